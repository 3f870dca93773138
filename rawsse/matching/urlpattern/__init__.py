"""WHATWG URL Patterns (Mercure 1.0's ``URLPattern`` matcher type), compiled to RE2:
the standard's tokenizer (:mod:`.tokens`), its constructor string parser
(:mod:`.constructor`), its part lists and their regular expressions (:mod:`.parts`), and
the match of a topic parsed as a URL (:mod:`.matcher`)."""

from rawsse.matching.urlpattern.matcher import url_pattern_matcher

__all__ = ["url_pattern_matcher"]
