# The C helpers of the trigger index (_native.c); see index.py for what they compute.
from typing import Any

def and_steps(
    x: int,
    steps: list[tuple[Any, ...]],
    record: dict[str, Any],
    changed: dict[str, Any],
    seen: dict[Any, int],
    t: float,
    small: int,
    none_key: object,
    term_pids: list[tuple[int, ...]] | None = ...,
    by_id: list[tuple[Any, ...]] | None = ...,
    skip: list[int] | None = ...,
) -> int: ...
def flip(
    x: int,
    touched: int,
    loose: int,
    all: int,
    moved: list[tuple[tuple[Any, ...], Any, Any]],
    t: float,
    none_key: object,
) -> tuple[int, int]: ...
def bits(x: int) -> list[int]: ...
def from_bits(positions: list[int]) -> int: ...
def decide(
    x: int,
    nfo: int,
    term_key: list[Any],
    term_kbits: list[tuple[int, ...]],
    term_exact: list[bool],
    out: set[Any],
    sure: set[Any] | None,
    flipped: set[Any],
    steps: list[tuple[Any, ...]],
    record: dict[str, Any],
    changed: dict[str, Any],
    seen: dict[Any, int],
    t: float,
    small: int,
    none_key: object,
    term_pids: list[tuple[int, ...]],
    by_id: list[tuple[Any, ...]],
    skip: list[int] | None = ...,
) -> None: ...
def warm(record: object) -> None: ...
