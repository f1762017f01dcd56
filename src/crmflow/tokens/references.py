"""What a text refers to: the basis of editor validation and the data panel."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from crmflow.tokens.syntax import CACHED_TEMPLATE_CHARS, Token, parse


@dataclass
class References:
    """Referenced names, grouped by root.

    ``objects`` maps the roots that name the enrolled record (``record`` or an object type name
    such as ``contact``) to the properties read; whether that root is the workflow's object type
    is the caller's check (it knows the definition).
    """

    tokens: list[Token] = field(default_factory=list)
    objects: dict[str, set[str]] = field(default_factory=dict)
    sources: dict[str, set[str]] = field(default_factory=dict)
    actions: dict[str, set[str]] = field(default_factory=dict)
    event: set[str] = field(default_factory=set)
    # Tokens whose shape is wrong for their root (e.g. ``actions.x.score`` without ``outputs``).
    malformed: list[tuple[Token, str]] = field(default_factory=list)

    def merge(self, other: References) -> None:
        self.tokens.extend(other.tokens)
        for mine, theirs in (
            (self.objects, other.objects),
            (self.sources, other.sources),
            (self.actions, other.actions),
        ):
            for k, v in theirs.items():
                mine.setdefault(k, set()).update(v)
        self.event |= other.event
        self.malformed.extend(other.malformed)


def _add(refs: References, tok: Token) -> None:
    refs.tokens.append(tok)
    p = tok.path
    root = p[0]
    if root == "sources":
        if len(p) < 3:
            refs.malformed.append((tok, "use sources.<source id>.<property>"))
            return
        refs.sources.setdefault(p[1], set()).add(p[2])
    elif root == "actions":
        if len(p) < 4 or p[2] != "outputs":
            refs.malformed.append((tok, "use actions.<action id>.outputs.<name>"))
            return
        refs.actions.setdefault(p[1], set()).add(p[3])
    elif root == "event":
        if len(p) < 2:
            refs.malformed.append((tok, "use event.<property>"))
            return
        refs.event.add(p[1])
    else:
        if len(p) < 2:
            refs.malformed.append((tok, f"use {root}.<property>"))
            return
        refs.objects.setdefault(root, set()).add(p[1])


def references(text: str) -> References:
    """Parse ``text`` (TemplateError on bad syntax) and list what its tokens read."""
    refs = References()
    for tok in parse(text).tokens:
        _add(refs, tok)
    return refs


@lru_cache(maxsize=4096)
def _cached(text: str) -> References:
    # Shared: only ever merged from, never handed out.
    return references(text)


def references_in(values: Iterable[object]) -> References:
    """References of every string found in (nested) field values (a new object each call)."""
    refs = References()
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "{{" in v:
                refs.merge(_cached(v) if len(v) <= CACHED_TEMPLATE_CHARS else references(v))
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return refs
