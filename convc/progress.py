"""A small progress bar for long work, written to stderr.

On a terminal it redraws one line; elsewhere (CI, pipes) it prints a line at
each step's end only, so logs stay short. ``quiet`` turns it off (``--json``).
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress", "end_line"]

_open_lines: set = set()      # terminal streams with a progress line not yet ended


def end_line() -> None:
    """End a progress line left open on a terminal (before an error or "interrupted")."""
    for stream in list(_open_lines):
        try:
            stream.write("\n")
            stream.flush()
        except (OSError, ValueError):
            pass
    _open_lines.clear()


class Progress:
    """A progress bar of ``total`` steps labelled ``label`` on ``stream`` (stderr)."""

    def __init__(self, total: int, label: str, quiet: bool = False, stream=None):
        self.total = max(1, int(total))
        self.label = label
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._last = 0.0

    def update(self, done: int, info: str = "", final: bool = False) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if self.tty and not final and now - self._last < 0.1:
            return
        self._last = now
        width = 24
        filled = int(width * min(done, self.total) / self.total)
        bar = "#" * filled + "." * (width - filled)
        line = f"{self.label} [{bar}] {done}/{self.total} {now - self.start:6.1f}s {info}"
        if self.tty:
            self.stream.write("\r" + line.ljust(100) + ("\n" if final else ""))
            self.stream.flush()
            if final:
                _open_lines.discard(self.stream)
            else:
                _open_lines.add(self.stream)
        elif final:
            self.stream.write(line + "\n")
            self.stream.flush()
