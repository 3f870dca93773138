"""Policy: who may do what, how often, and from where. Admission of connections,
streams and publishes (:mod:`.admission`) from credentials (:mod:`.auth`), per-address
and per-credential limits (:mod:`.limits`), trusted proxies (:mod:`.proxy`) and CORS
(:mod:`.cors`). Decisions only: nothing here answers or touches a socket."""
