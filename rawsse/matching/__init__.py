"""Topic matchers: which topics a selector names, sans I/O.

A subscriber in Mercure mode names its topics with selectors rather than names: a topic
itself (exact), ``*`` (every topic), an RFC 6570 URI template (Mercure 0.x), or a WHATWG
URL pattern (Mercure 1.0). Grants in tokens use the same selectors. Selectors other than
exact and ``*`` compile to regular expressions run by a linear-time engine
(:mod:`.engine`), so that no selector a client sends can make a match slow.
"""
