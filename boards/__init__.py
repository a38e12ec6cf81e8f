"""convc.boards: the boards convc can size an accelerator for."""

from convc.errors import ConvcError

from .board import Board
from .virtex6 import VIRTEX6

__all__ = ["Board", "BOARDS", "get_board"]

BOARDS: dict[str, Board] = {b.name: b for b in (VIRTEX6,)}
# the board's other common names
ALIASES = {"ml605": "virtex6", "xc6vlx240t": "virtex6"}


def get_board(name: str) -> Board:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BOARDS:
        raise ConvcError(f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}")
    return BOARDS[key]
