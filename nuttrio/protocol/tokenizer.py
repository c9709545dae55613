r"""NUT's line tokenizer: the one used by upsd on the network and by every NUT config file.

General theory of operation
---------------------------
NUT splits both protocol requests and configuration files with one streaming state machine
(``parseconf`` in NUT 2.8.0). This module reproduces its rules, byte for byte, so that a
request or a config file means to nuttrio exactly what it means to upsd:

* words are separated by C ``isspace`` characters (space, TAB, CR, VT, FF); a line ends at LF;
* a ``"`` at the start of a word quotes until the next unescaped ``"``; an LF inside quotes
  does not end the line;
* ``\\x`` takes ``x`` literally, inside or outside quotes; ``\\`` + LF continues the line;
* an unquoted ``#`` starts a comment; an unquoted ``=`` is always a word of its own;
* bytes below 0x20 (other than the whitespace above) and above 0x7F are dropped, although
  such a byte still starts a word;
* words are cut at 512 characters and words past the 32nd are dropped.

Where upsd misbehaves (an unescaped ``#`` inside quotes makes it drop the rest of the read
without any reply) the tokenizer reports a :class:`LineError` for that line and skips to the
next LF, so a server can answer with a clear error (see docs/compat.md).

Memory is bounded: with ``max_line`` set, a logical line longer than that many bytes yields
:class:`LineTooLong` and the tokenizer stops; the caller is expected to close the stream.

This module performs no I/O.
"""

from __future__ import annotations

import enum
import re

import attrs

__all__ = [
    "ARG_LIMIT",
    "WORD_LIMIT",
    "Line",
    "LineError",
    "LineTooLong",
    "Tokenizer",
    "split_text",
]

#: Characters kept per word (parseconf's PCONF_DEFAULT_WORDLEN_LIMIT).
WORD_LIMIT = 512
#: Words kept per line (parseconf's PCONF_DEFAULT_ARG_LIMIT).
ARG_LIMIT = 32

_LF = 0x0A
_SPACES = frozenset(b" \t\r\x0b\x0c")
# A physical line with none of these bytes can be split with bytes.split().
_SLOW_BYTES = re.compile(rb'[^\x20-\x7f\t\r\x0b\x0c]|["\\#=]')


@attrs.frozen
class Line:
    """One logical line split into words.

    Attributes:
        words: The words, in order; empty for a blank or comment-only line.
        lineno: The physical line (1-based) on which the logical line started.
    """

    words: tuple[str, ...]
    lineno: int


@attrs.frozen
class LineError:
    """A line that could not be split; the tokenizer has skipped to the next LF.

    Attributes:
        message: What was wrong, in words.
        lineno: The physical line (1-based) on which the error was found.
    """

    message: str
    lineno: int


@attrs.frozen
class LineTooLong:
    """A logical line grew past ``max_line`` bytes; nothing more will be parsed.

    Attributes:
        limit: The limit that was exceeded.
        lineno: The physical line on which the long line started.
    """

    limit: int
    lineno: int


class _State(enum.Enum):
    #: Between words.
    FIND_WORD_START = enum.auto()
    #: Inside a comment, waiting for LF.
    FIND_EOL = enum.auto()
    #: Inside a quoted word.
    QUOTE_COLLECT = enum.auto()
    #: After a backslash inside a quoted word.
    QUOTE_LITERAL = enum.auto()
    #: Inside an unquoted word.
    COLLECT = enum.auto()
    #: After a backslash inside an unquoted word.
    COLLECT_LITERAL = enum.auto()
    #: After a parse error, discarding until LF.
    SKIP_TO_EOL = enum.auto()


class _Fast(enum.Enum):
    #: No complete line yet: wait for more data.
    WAIT = enum.auto()
    #: The line has special bytes (or input ended without LF): use the state machine.
    SLOW = enum.auto()


class Tokenizer:
    """Streaming splitter of bytes into :class:`Line` events, as NUT's parseconf does.

    Feed bytes with :meth:`feed` (``b""`` means end of input), then call :meth:`next_line`
    until it returns ``None`` (more data needed).

    Args:
        max_line: Largest logical line accepted, in bytes, or ``None`` for no limit.
        quotes_end_at_eol: Report a quoted word still open at the end of its line (or of
            the input) as a :class:`LineError` "missing closing quote" at the line where
            it began. parseconf reads on into the next lines instead (the default).
    """

    def __init__(self, *, max_line: int | None = None, quotes_end_at_eol: bool = False) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max_line = max_line
        self._eof = False
        self._dead = False
        self._lineno = 1
        # State of the slow path, kept across feeds.
        self._state = _State.FIND_WORD_START
        self._words: list[str] = []
        self._word = bytearray()
        self._in_line = False  # the slow path has consumed part of the current line
        self._line_start = 1
        self._line_bytes = 0
        self._error: str | None = None
        self._quotes_end_at_eol = quotes_end_at_eol
        self._quote_line = 1

    @property
    def lineno(self) -> int:
        """The physical line number (1-based) the tokenizer is on."""
        return self._lineno

    def feed(self, data: bytes | bytearray) -> None:
        """Add received bytes; ``b""`` marks the end of the input.

        Raises:
            RuntimeError: If called after the end of input was marked.
        """
        if self._eof:
            if data:
                raise RuntimeError("data fed after end of input")
            return
        if not data:
            self._eof = True
            return
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def unparsed(self) -> bytes:
        """Bytes received but not yet consumed by a line (a partial line)."""
        return bytes(self._buf[self._pos :])

    def discard_unparsed(self) -> None:
        """Forget the partial line, as when the stream switches to TLS."""
        self._buf.clear()
        self._pos = 0
        self._state = _State.FIND_WORD_START
        self._words = []
        self._word.clear()
        self._in_line = False
        self._line_bytes = 0
        self._error = None

    def has_pending_line(self) -> bool:
        """Whether a complete line (or a final one at end of input) is buffered."""
        return self._buf.find(b"\n", self._pos) >= 0 or (self._eof and self._pos < len(self._buf))

    def next_line(self) -> Line | LineError | LineTooLong | None:
        """Return the next complete line, a line error, or ``None`` if more data is needed."""
        if self._dead:
            return None
        if not self._in_line and self._state is _State.FIND_WORD_START:
            fast = self._fast_line()
            if fast is _Fast.WAIT:
                return None
            if fast is not _Fast.SLOW:
                return fast
        return self._slow_line()

    # -- the fast path: a whole physical line without any special byte ---------------------

    def _fast_line(self) -> Line | LineTooLong | _Fast:
        """Split a whole physical line without special bytes, or say why not."""
        end = self._buf.find(b"\n", self._pos)
        if end < 0:
            if self._max_line is not None and len(self._buf) - self._pos > self._max_line:
                return self._too_long()
            # No logical line can end before an LF; only at end of input may one without
            # LF count, and that is the slow path's business.
            return _Fast.SLOW if self._eof else _Fast.WAIT
        if self._max_line is not None and end - self._pos > self._max_line:
            return self._too_long()
        raw = bytes(self._buf[self._pos : end])
        if _SLOW_BYTES.search(raw):
            return _Fast.SLOW
        self._pos = end + 1
        lineno = self._lineno
        self._lineno += 1
        words = raw.split()
        if len(words) > ARG_LIMIT:
            del words[ARG_LIMIT:]
        return Line(tuple(w[:WORD_LIMIT].decode("ascii") for w in words), lineno)

    def _too_long(self) -> LineTooLong:
        self._dead = True
        limit = self._max_line if self._max_line is not None else 0
        return LineTooLong(limit, self._line_start if self._in_line else self._lineno)

    # -- the slow path: parseconf's character state machine ------------------------------

    def _end_word(self) -> None:
        if len(self._words) < ARG_LIMIT:
            self._words.append(self._word.decode("ascii"))
        self._word.clear()

    def _add(self, ch: int) -> None:
        if ch < 0x20 or ch > 0x7F or len(self._word) >= WORD_LIMIT:
            return
        self._word.append(ch)

    def _finish(self) -> Line | LineError:
        words = tuple(self._words)
        error = self._error
        self._words = []
        self._word.clear()
        self._state = _State.FIND_WORD_START
        self._in_line = False
        self._line_bytes = 0
        self._error = None
        if error is not None:
            return LineError(error, self._line_start)
        return Line(words, self._line_start)

    def _unclosed_quote(self) -> LineError:
        self._error = (
            "missing closing quote (the quoted word that begins on this line does not end on it)"
        )
        self._line_start = self._quote_line
        result = self._finish()
        assert isinstance(result, LineError)
        return result

    def _slow_line(self) -> Line | LineError | LineTooLong | None:
        buf = self._buf
        pos = self._pos
        n = len(buf)
        if not self._in_line:
            self._in_line = True
            self._line_start = self._lineno
        state = self._state
        while pos < n:
            ch = buf[pos]
            pos += 1
            self._line_bytes += 1
            if ch == _LF:
                self._lineno += 1
            if self._max_line is not None and self._line_bytes > self._max_line + 1:
                self._pos = pos
                return self._too_long()
            if state is _State.FIND_WORD_START:
                if ch == _LF:
                    self._pos = pos
                    return self._finish()
                if ch == 0x23:  # '#'
                    state = _State.FIND_EOL
                elif ch in _SPACES:
                    pass
                elif ch == 0x5C:  # '\\'
                    state = _State.COLLECT_LITERAL
                elif ch == 0x22:  # '"'
                    state = _State.QUOTE_COLLECT
                    self._quote_line = self._lineno
                else:
                    self._add(ch)
                    if ch == 0x3D:  # '='
                        self._end_word()
                    else:
                        state = _State.COLLECT
            elif state is _State.COLLECT:
                if ch == 0x23:
                    self._end_word()
                    state = _State.FIND_EOL
                elif ch == _LF:
                    self._end_word()
                    self._pos = pos
                    return self._finish()
                elif ch in _SPACES:
                    self._end_word()
                    state = _State.FIND_WORD_START
                elif ch == 0x3D:
                    self._end_word()
                    self._add(ch)
                    self._end_word()
                    state = _State.FIND_WORD_START
                elif ch == 0x5C:
                    state = _State.COLLECT_LITERAL
                else:
                    self._add(ch)
            elif state is _State.QUOTE_COLLECT:
                if ch == 0x23:
                    # upsd 2.8.0 drops the rest of the read here; we report the line instead.
                    self._error = "unescaped '#' inside a quoted word"
                    state = _State.SKIP_TO_EOL
                elif ch == 0x22:
                    self._end_word()
                    state = _State.FIND_WORD_START
                elif ch == 0x5C:
                    state = _State.QUOTE_LITERAL
                elif ch == _LF and self._quotes_end_at_eol:
                    self._pos = pos
                    return self._unclosed_quote()
                else:
                    self._add(ch)
            elif state is _State.QUOTE_LITERAL:
                if ch != _LF:
                    self._add(ch)
                state = _State.QUOTE_COLLECT
            elif state is _State.COLLECT_LITERAL:
                if ch != _LF:
                    self._add(ch)
                state = _State.COLLECT
            elif ch == _LF:  # FIND_EOL or SKIP_TO_EOL
                self._pos = pos
                return self._finish()
        self._pos = pos
        self._state = state
        if self._eof:
            return self._at_eof()
        return None

    def _at_eof(self) -> Line | LineError | None:
        # parseconf keeps a final line without LF only if a word was already complete.
        self._dead = True
        if self._quotes_end_at_eol and self._state in (_State.QUOTE_COLLECT, _State.QUOTE_LITERAL):
            return self._unclosed_quote()
        if self._error is not None:
            return self._finish()
        if self._words:
            if self._word:
                self._end_word()
            return self._finish()
        return None


def split_text(text: bytes, *, quotes_end_at_eol: bool = False) -> list[Line | LineError]:
    """Split a whole document (a config file) into lines, as parseconf reads a file.

    Blank and comment-only lines are left out.

    Args:
        text: The file's bytes.
        quotes_end_at_eol: See :class:`Tokenizer`.

    Returns:
        The non-empty lines and the line errors, in file order.
    """
    tok = Tokenizer(quotes_end_at_eol=quotes_end_at_eol)
    tok.feed(text)
    tok.feed(b"")
    out: list[Line | LineError] = []
    while True:
        item = tok.next_line()
        if item is None:
            return out
        if isinstance(item, LineTooLong):  # pragma: no cover - no limit was set
            raise AssertionError("unreachable: no line limit")
        if isinstance(item, LineError) or item.words:
            out.append(item)
