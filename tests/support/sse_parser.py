"""A parser that follows the WHATWG HTML "Interpreting an event stream" rules to the
letter, used to read back what rawsse writes. Written for the tests, independent of
the encoder."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ParsedEvent:
    type: str
    data: str
    last_event_id: str


@dataclass
class StreamParser:
    """Feed decoded text with :meth:`feed`; dispatched events collect in ``events``."""

    events: list[ParsedEvent] = field(default_factory=list)
    retry: int | None = None
    comments: int = 0
    last_event_id: str = ""
    _data: str = ""
    _type: str = ""
    _buffer: str = ""
    _started: bool = False

    def feed(self, text: str) -> None:
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        self._buffer += text
        while True:
            # A line ends at CRLF, LF or CR; a CR at the very end may be half of a CRLF.
            cut = -1
            for i, char in enumerate(self._buffer):
                if char == "\n" or char == "\r":
                    cut = i
                    break
            if cut < 0:
                return
            if self._buffer[cut] == "\r":
                if cut + 1 == len(self._buffer):
                    return
                end = cut + 2 if self._buffer[cut + 1] == "\n" else cut + 1
            else:
                end = cut + 1
            line, self._buffer = self._buffer[:cut], self._buffer[end:]
            self._line(line)

    def _line(self, line: str) -> None:
        if line == "":
            self._dispatch()
            return
        if line.startswith(":"):
            self.comments += 1
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data += value + "\n"
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value and value.isascii() and value.isdigit():
            self.retry = int(value)

    def _dispatch(self) -> None:
        if self._data == "":
            self._type = ""
            return
        data = self._data[:-1] if self._data.endswith("\n") else self._data
        self.events.append(ParsedEvent(self._type or "message", data, self.last_event_id))
        self._data = ""
        self._type = ""


def parse(text: str) -> StreamParser:
    parser = StreamParser()
    parser.feed(text)
    return parser


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """Decode a chunked body; return the payload and whether the terminating chunk came.
    Raises ValueError on a malformed chunk."""
    out = bytearray()
    rest = body
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            raise ValueError("truncated chunk size")
        size = int(size_line, 16)
        if size == 0:
            return bytes(out), rest.startswith(b"\r\n")
        if len(rest) < size + 2 or rest[size : size + 2] != b"\r\n":
            raise ValueError("truncated chunk")
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out), False
