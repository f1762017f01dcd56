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
) -> int: ...
def bits(x: int) -> list[int]: ...
def from_bits(positions: list[int]) -> int: ...
