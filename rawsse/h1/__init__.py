"""Sans-IO HTTP/1.1: the request cycles of a connection on h11 (:mod:`.exchange`,
:mod:`.plainread`), the checks of a request's head (:mod:`.request`) and its body
(:mod:`.body`), what requests say (:mod:`.parse`) and complete answers
(:mod:`.replies`). Bytes in, bytes out: nothing here imports asyncio or socket."""
