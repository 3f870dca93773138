"""URI templates as selectors: every expansion RFC 6570's examples give matches its
template (levels 1 to 4, each operator, lists, maps and modifiers), near misses do not,
and what the grammar does not allow is refused with the reason."""

from __future__ import annotations

import pytest

from rawsse.matching.selectors import InvalidSelector, Kind, selector
from rawsse.matching.templates import MAX_EXPRESSIONS, template_pattern

# RFC 6570's variables: var "value", hello "Hello World!", path "/foo/bar", list
# ["red", "green", "blue"], keys {semi: ";", dot: ".", comma: ","}, x 1024, y 768,
# empty "", and undef undefined. Each template with what the RFC expands it to.
EXPANSIONS = [
    ("{var}", "value"),
    ("{hello}", "Hello%20World%21"),
    ("{+var}", "value"),
    ("{+hello}", "Hello%20World!"),
    ("{+path}/here", "/foo/bar/here"),
    ("here?ref={+path}", "here?ref=/foo/bar"),
    ("X{#var}", "X#value"),
    ("X{#hello}", "X#Hello%20World!"),
    ("map?{x,y}", "map?1024,768"),
    ("{x,hello,y}", "1024,Hello%20World%21,768"),
    ("{+x,hello,y}", "1024,Hello%20World!,768"),
    ("{+path,x}/here", "/foo/bar,1024/here"),
    ("{#x,hello,y}", "#1024,Hello%20World!,768"),
    ("{#path,x}/here", "#/foo/bar,1024/here"),
    ("X{.var}", "X.value"),
    ("X{.x,y}", "X.1024.768"),
    ("{/var}", "/value"),
    ("{/var,x}/here", "/value/1024/here"),
    ("{;x,y}", ";x=1024;y=768"),
    ("{;x,y,empty}", ";x=1024;y=768;empty"),
    ("{?x,y}", "?x=1024&y=768"),
    ("{?x,y,empty}", "?x=1024&y=768&empty="),
    ("?fixed=yes{&x}", "?fixed=yes&x=1024"),
    ("{&x,y,empty}", "&x=1024&y=768&empty="),
    ("{var:3}", "val"),
    ("{list}", "red,green,blue"),
    ("{list*}", "red,green,blue"),
    ("{keys}", "semi,%3B,dot,.,comma,%2C"),
    ("{keys*}", "semi=%3B,dot=.,comma=%2C"),
    ("{+path:6}/here", "/foo/b/here"),
    ("{+list*}", "red,green,blue"),
    ("{+keys*}", "semi=;,dot=.,comma=,"),
    ("{#keys*}", "#semi=;,dot=.,comma=,"),
    ("X{.list*}", "X.red.green.blue"),
    ("X{.keys*}", "X.semi=%3B.dot=..comma=%2C"),
    ("{/list*,path:4}", "/red/green/blue/%2Ffoo"),
    ("{/keys*}", "/semi=%3B/dot=./comma=%2C"),
    ("{;keys*}", ";semi=%3B;dot=.;comma=%2C"),
    ("{;list*}", ";list=red;list=green;list=blue"),
    ("{;hello:5}", ";hello=Hello"),
    ("{?list}", "?list=red,green,blue"),
    ("{?list*}", "?list=red&list=green&list=blue"),
    ("{?keys*}", "?semi=%3B&dot=.&comma=%2C"),
    ("{&list*}", "&list=red&list=green&list=blue"),
    # Undefined variables expand to nothing, and so does an expression of only them.
    ("X{undef}Y", "XY"),
    ("{?undef}", ""),
    # Mercure's own use: resources by IRI.
    ("https://example.com/books/{id}", "https://example.com/books/1"),
    ("https://example.com/books/{id}", "https://example.com/books/"),
    ("https://example.com/users/{user}/books/{book}", "https://example.com/users/a%2Fb/books/9"),
    ("https://example.com/{+rest}", "https://example.com/a/b/c?d=e#f"),
    ("https://example.com/livres/{id}", "https://example.com/livres/été"),
]


@pytest.mark.parametrize(("template", "topic"), EXPANSIONS)
def test_each_expansion_matches_its_template(template: str, topic: str) -> None:
    assert selector(Kind.TEMPLATE, template).matches(topic)


NEAR_MISSES = [
    ("https://example.com/books/{id}", "https://example.com/books/1/2"),  # "/" is reserved
    ("https://example.com/books/{id}", "https://example.com/authors/1"),
    ("https://example.com/books/{id}", "https://example.com/books/a b"),
    ("https://example.com/books/{id}", "http://example.com/books/1"),
    ("https://example.com/books/{id}.json", "https://example.com/books/1.xml"),
    ("{?q}", "?z=1"),  # another name
    ("{?q}", "?q"),  # "?" names always carry "="
    ("{;q}", ";z"),
    ("X{.var}", "Xvalue"),
    ("{var}", "a/b"),
    ("{var}", "a?b"),
    ("{#var}", "var"),
]


@pytest.mark.parametrize(("template", "topic"), NEAR_MISSES)
def test_near_misses_do_not_match(template: str, topic: str) -> None:
    assert not selector(Kind.TEMPLATE, template).matches(topic)


def test_a_template_without_expressions_matches_itself_only() -> None:
    literal = selector(Kind.TEMPLATE, "https://example.com/books/1")
    assert literal.matches("https://example.com/books/1")
    assert not literal.matches("https://example.com/books/12")
    assert not literal.matches("https://example.com/books/1x")  # "." is not a wildcard
    dotted = selector(Kind.TEMPLATE, "a.b")
    assert not dotted.matches("axb")


INVALID = [
    ("{", "not closed"),
    ("a{b", "not closed"),
    ("{}", "variable name is expected"),
    ("{=x}", "reserved"),
    ("{|x}", "reserved"),
    ("{x:0}", "modifier"),
    ("{x:10000}", "modifier"),
    ("{x**}", "modifier"),
    ("{x y}", "modifier"),
    ("{x,}", "variable name is expected"),
    ("a b{x}", "not allowed"),
    ("a%zz{x}", "not allowed"),
    ("a}b", "not allowed"),
    ("<{x}>", "not allowed"),
    ("{x}" * (MAX_EXPRESSIONS + 1), f"at most {MAX_EXPRESSIONS}"),
]


@pytest.mark.parametrize(("template", "reason"), INVALID)
def test_what_the_grammar_does_not_allow_is_refused_with_the_reason(
    template: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        template_pattern(template)
    with pytest.raises(InvalidSelector, match="is not a URI template"):
        selector(Kind.TEMPLATE, template)


def test_a_pathological_template_is_matched_without_backtracking() -> None:
    """Eight adjacent expressions and a literal that never comes: a backtracking engine
    tries every way to share 20 000 characters among eight variables before it fails
    (about 20 000 ** 8 / 8! ways, far past any test's timeout); RE2 fails in one pass."""
    template = "{a}{b}{c}{d}{e}{f}{g}{h}!"
    greedy = selector(Kind.TEMPLATE, template)
    assert not greedy.matches("a" * 20_000)
    assert greedy.matches("a" * 20_000 + "!")
