"""convc.boards: the boards convc can size an accelerator for."""

from convc.errors import ConvcError

from .board import Board
from .catalog import BOARDS

__all__ = ["Board", "BOARDS", "get_board"]

# the boards' other common names
ALIASES = {"ml605": "virtex6", "xc6vlx240t": "virtex6", "xc7k325t": "kc705", "arty": "arty-a7",
           "arty-a7-100t": "arty-a7", "xc7a100t": "arty-a7", "ulx3s-85f": "ulx3s", "ecp5": "ulx3s",
           "lfe5u-85f": "ulx3s"}


def get_board(name: str) -> Board:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BOARDS:
        raise ConvcError(f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}")
    return BOARDS[key]
