"""Personalization token syntax: ``{{ root.path | filter: arg, arg | filter }}``.

Deliberately logic-less. A token is a dotted path into plain data plus a pipeline of named
filters with literal arguments; there are no expressions, calls, attribute access, loops or
conditionals, so a template can only ever *read* the data it is given. Anything else inside
``{{ }}`` is a syntax error naming the offending character and position, raised when the
template is parsed (editor-api refuses it at save/publish time).

Text outside tokens is literal; ``\\{{`` writes a literal ``{{``. Single braces are ordinary
text (nothing here ever calls ``str.format``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from crmflow.errors import FieldViolation, InvalidArgument

# Bounds that make hostile templates cheap to refuse.
MAX_TEMPLATE_CHARS = 100_000
MAX_TOKENS = 500
MAX_FILTERS = 10
MAX_PATH_DEPTH = 12
MAX_TOKEN_CHARS = 1_000

OPEN, CLOSE = "{{", "}}"

Literal = str | int | float


class TemplateError(InvalidArgument):
    """A template that cannot be parsed; names the position and what is wrong."""

    def __init__(self, message: str, *, position: int = -1, field: str = "") -> None:
        where = f" at {position}" if position >= 0 else ""
        super().__init__(
            f"personalization token{where}: {message}",
            [FieldViolation(field or "template", f"{message}{where}")],
        )
        self.position = position
        self.reason = message


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    args: tuple[Literal, ...] = ()


@dataclass(frozen=True, slots=True)
class Token:
    path: tuple[str, ...]
    filters: tuple[Filter, ...]
    source: str  # the token as written, for messages
    position: int

    @property
    def root(self) -> str:
        return self.path[0]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    def default(self) -> Literal | None:
        for f in self.filters:
            if f.name == "default" and f.args:
                return f.args[0]
        return None


Segment = str | Token


@dataclass(frozen=True, slots=True)
class Template:
    segments: tuple[Segment, ...]
    tokens: tuple[Token, ...] = ()
    # The token when the text is exactly one token (surrounding blanks allowed): such a field
    # resolves to a typed value (number, bool, list...) instead of a string.
    single_token: Token | None = None

    @classmethod
    def of(cls, segments: Sequence[Segment]) -> Template:
        tokens = tuple(s for s in segments if isinstance(s, Token))
        parts = [s for s in segments if not (isinstance(s, str) and not s.strip())]
        single = parts[0] if len(parts) == 1 and isinstance(parts[0], Token) else None
        return cls(tuple(segments), tokens, single)


_LEX = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<num>-?\d+(?:\.\d+)?)(?![A-Za-z_])
      | (?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
      | (?P<op>[.|:,])
      | (?P<end>$)
    )""",
    re.VERBOSE,
)
_ESC = re.compile(r"\\(.)")


def _lex(body: str, base: int) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    i = 0
    while True:
        m = _LEX.match(body, i)
        if m is None:
            j = len(body) - len(body[i:].lstrip())
            raise TemplateError(
                f"unexpected {body[j]!r} in {{{{{body}}}}}: tokens are a path and filters only",
                position=base + j,
            )
        kind = m.lastgroup or ""
        if kind == "end":
            return out
        out.append((kind, m.group(kind), base + m.start(kind)))
        i = m.end()


def _name(text: str, pos: int) -> str:
    if text.startswith("__"):
        raise TemplateError(f"names starting with '__' are not allowed ({text!r})", position=pos)
    return text


def _literal(kind: str, text: str, pos: int) -> Literal:
    if kind == "str":
        return _ESC.sub(r"\1", text[1:-1])
    if kind == "num":
        return float(text) if "." in text else int(text)
    raise TemplateError(f"expected a quoted string or a number, got {text!r}", position=pos)


def _parse_token(body: str, base: int) -> Token:
    if len(body) > MAX_TOKEN_CHARS:
        raise TemplateError(f"token longer than {MAX_TOKEN_CHARS} characters", position=base)
    lex = _lex(body, base)
    if not lex or lex[0][0] != "name":
        raise TemplateError(
            "a token starts with a name (contact, record, sources, actions, event, ...)",
            position=lex[0][2] if lex else base,
        )
    path = [_name(lex[0][1], lex[0][2])]
    i = 1
    while i < len(lex) and lex[i][1] == ".":
        if i + 1 >= len(lex) or lex[i + 1][0] not in ("name", "num"):
            raise TemplateError("a '.' must be followed by a name", position=lex[i][2])
        seg_kind, seg, pos = lex[i + 1]
        path.append(_name(seg, pos) if seg_kind == "name" else seg)
        i += 2
    if len(path) > MAX_PATH_DEPTH:
        raise TemplateError(f"paths are at most {MAX_PATH_DEPTH} names deep", position=base)
    filters: list[Filter] = []
    while i < len(lex):
        _, text, pos = lex[i]
        if text != "|":
            raise TemplateError(f"expected '|' or the end of the token, got {text!r}", position=pos)
        if i + 1 >= len(lex) or lex[i + 1][0] != "name":
            raise TemplateError("a '|' must be followed by a filter name", position=pos)
        fname, fpos = lex[i + 1][1], lex[i + 1][2]
        i += 2
        args: list[Literal] = []
        if i < len(lex) and lex[i][1] == ":":
            while True:
                if i + 1 >= len(lex):
                    raise TemplateError(f"filter {fname!r} is missing an argument", position=pos)
                args.append(_literal(*lex[i + 1]))
                i += 2
                if i < len(lex) and lex[i][1] == ",":
                    continue
                break
        from crmflow.tokens.filters import check_filter  # filters import syntax types

        check_filter(fname, tuple(args), fpos)
        filters.append(Filter(fname, tuple(args)))
        if len(filters) > MAX_FILTERS:
            raise TemplateError(f"at most {MAX_FILTERS} filters per token", position=fpos)
    return Token(tuple(path), tuple(filters), "{{" + body + "}}", base - 2)


def _find_close(text: str, start: int) -> int:
    """Index of the ``}}`` closing a token opened before ``start`` (quotes respected)."""
    i, quote = start, ""
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "{" and text.startswith(OPEN, i):
            raise TemplateError("'{{' inside a token (nested tokens are not allowed)", position=i)
        elif c == "}" and text.startswith(CLOSE, i):
            return i
        i += 1
    raise TemplateError("'{{' is never closed with '}}'", position=start - 2)


# Templates up to this size are cached (bounding the cache's memory to ~4096 x 8 KB).
CACHED_TEMPLATE_CHARS = 8_192


def parse(text: str) -> Template:
    """Parse a template (small ones are cached); raises ``TemplateError`` (an InvalidArgument)."""
    if len(text) <= CACHED_TEMPLATE_CHARS:
        return _parse_cached(text)
    return _parse(text)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Template:
    return _parse(text)


def _parse(text: str) -> Template:
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"text longer than {MAX_TEMPLATE_CHARS} characters")
    segments: list[Segment] = []
    buf: list[str] = []
    i = 0
    ntokens = 0
    while True:
        j = text.find(OPEN, i)
        if j < 0:
            buf.append(text[i:])
            break
        if j > 0 and text[j - 1] == "\\":
            buf.append(text[i : j - 1] + OPEN)
            i = j + 2
            continue
        buf.append(text[i:j])
        end = _find_close(text, j + 2)
        ntokens += 1
        if ntokens > MAX_TOKENS:
            raise TemplateError(f"more than {MAX_TOKENS} tokens in one text", position=j)
        if buf:
            lit = "".join(buf)
            if lit:
                segments.append(lit)
            buf = []
        segments.append(_parse_token(text[j + 2 : end], j + 2))
        i = end + 2
    lit = "".join(buf)
    if lit:
        segments.append(lit)
    return Template.of(segments)


def has_tokens(text: str) -> bool:
    return OPEN in text
