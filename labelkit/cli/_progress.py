"""Progress on stderr: a redrawn bar on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import time
from typing import TextIO

from ._common import write_line

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:30`` or ``3:02:10``."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts finished files against a total and shows done/total, rate and ETA.

    On a terminal the bar is redrawn in place at most ``tty_interval`` apart; elsewhere (a log
    file, CI) one plain line is written every ``plain_interval`` seconds, so logs stay readable.
    Lines printed through ``print`` appear above the bar instead of through it.
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        tty: bool | None = None,
        tty_interval: float = 0.1,
        plain_interval: float = 10.0,
        clock=time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0
        # Video frames decoded by the workers so far and expected in the videos they started:
        # shared memory, so that worker processes can count into it.
        self.frames = multiprocessing.Array("q", 2)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = _isatty(self.stream) if tty is None else tty
        self._interval = tty_interval if self.tty else plain_interval
        self._clock = clock
        self.start = clock()
        self._last_draw = self.start
        self._drawn = False  # a bar is on the terminal's last line

    # -- counting ---------------------------------------------------------------------------

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more files as finished."""
        self.done += n
        self.tick()

    def tick(self) -> None:
        """Redraw if it is time (also called while waiting, so the ETA keeps moving)."""
        if not self.enabled:
            return
        now = self._clock()
        if now - self._last_draw < self._interval and self.done < self.total:
            return
        self._last_draw = now
        if self.tty:
            self._draw()
        elif self.done < self.total:  # the summary says the rest
            self.stream.write(f"labelkit: {self.status()}\n")
            self.stream.flush()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return self._clock() - self.start

    def rate(self) -> float:
        """Files per second so far."""
        elapsed = self.elapsed()
        return self.done / elapsed if elapsed > 0 else 0.0

    def status(self) -> str:
        """``12/100 files (12%), 3.4 files/s, ETA 0:25``."""
        pct = 100 * self.done / self.total if self.total else 100.0
        rate = self.rate()
        text = f"{self.done}/{self.total} files ({pct:.0f}%), {rate:.1f} files/s"
        if 0 < self.done < self.total and rate > 0:
            text += f", ETA {format_duration((self.total - self.done) / rate)}"
        frames, expected = self.frames[0], self.frames[1]
        if frames:
            text += f"; video frames {frames}/{expected}"
        return text

    # -- output -----------------------------------------------------------------------------

    def print(self, text: str, stream: TextIO | None = None) -> None:
        """Print a line above the bar (on ``stream``, default stderr), then redraw the bar."""
        was_drawn = self._drawn
        self._clear()
        target = stream or self.stream
        write_line(target, text)
        target.flush()
        if was_drawn:
            self._draw()

    def close(self) -> None:
        """Remove the bar, leaving the terminal line clean for the summary."""
        self._clear()

    def _draw(self) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        status = self.status()
        bar_width = max(10, min(40, width - len(status) - 4))
        filled = int(bar_width * self.done / self.total) if self.total else bar_width
        line = f"[{'#' * filled}{'.' * (bar_width - filled)}] {status}"[: width - 1]
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or a stand-in without isatty
        return False
