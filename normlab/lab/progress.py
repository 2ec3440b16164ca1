"""Progress of long work on stderr: a redrawn bar on a terminal, plain lines otherwise.

    bar = Progress(total=40, label="training runs")
    bar.update(done, note="weight-scale batchnorm/scale=1.0e-04 finished 3.1s")
    bar.close()

On a TTY the bar redraws one line (``\\r``) at most ten times a second and
shows done/total, the elapsed time and an estimate of the time left; off a
TTY (CI logs, pipes) each update prints one complete line, so logs read top
to bottom. Dependency-free by design: numpy is normlab's only requirement.
"""
from __future__ import annotations

import shutil
import sys
import time

__all__ = ["Progress", "format_seconds"]


def format_seconds(s: float) -> str:
    """``75.2`` -> ``"1m15s"``; ``3.4`` -> ``"3.4s"``."""
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class Progress:
    """A progress display for ``total`` steps; ``stream`` defaults to the current stderr
    and ``tty`` to whether that stream is a terminal."""

    def __init__(self, total: int, label: str = "", stream=None, tty: bool | None = None):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.start = time.perf_counter()
        self.done = 0
        self._last_draw = 0.0
        self._drawn = False

    def _eta(self) -> str:
        elapsed = time.perf_counter() - self.start
        if self.done <= 0 or self.done >= self.total:
            return format_seconds(elapsed)
        left = elapsed / self.done * (self.total - self.done)
        return f"{format_seconds(elapsed)}, ~{format_seconds(left)} left"

    def update(self, done: int, note: str = "") -> None:
        self.done = min(int(done), self.total) if self.total else int(done)
        width = len(str(self.total))
        if not self.tty:
            head = f"{self.label} " if self.label else ""
            self.stream.write(f"{head}[{self.done:>{width}}/{self.total}] {note}".rstrip() + "\n")
            self.stream.flush()
            return
        now = time.perf_counter()
        if self._drawn and now - self._last_draw < 0.1 and self.done < self.total:
            return
        self._last_draw = now
        cols = shutil.get_terminal_size((80, 24)).columns
        frac = self.done / self.total if self.total else 1.0
        bar_w = 24
        filled = int(round(frac * bar_w))
        line = (f"{self.label + ' ' if self.label else ''}[{'#' * filled}{'.' * (bar_w - filled)}] "
                f"{self.done:>{width}}/{self.total} {self._eta()}  {note}")
        line = line[:max(cols - 1, 10)]
        self.stream.write("\r" + line.ljust(max(cols - 1, 10)))
        self.stream.flush()
        self._drawn = True

    def message(self, text: str) -> None:
        """A line of its own (a phase, a warning) without breaking the bar."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
