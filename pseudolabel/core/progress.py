"""Progress with an ETA on stderr: rewritten in place on a terminal, one line every few
seconds otherwise (logs, CI)."""
from __future__ import annotations

import sys
import time


def format_seconds(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int, label: str, unit: str = "images", enabled: bool = True, stream=None):
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.25 if self.tty else 5.0
        self.count = 0
        self.start = self.last = time.perf_counter()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else float("nan")
        eta_text = format_seconds(eta) if eta == eta else "?"
        return (f"{self.label}: {self.count}/{self.total} {self.unit} "
                f"({100 * self.count / self.total:.0f}%), {rate:.2f} {self.unit}/s, "
                f"elapsed {format_seconds(elapsed)}, ETA {eta_text}")

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.enabled and (now - self.last >= self.interval or self.count == self.total):
            self.last = now
            self.stream.write(("\r" + self.line() + "\033[K") if self.tty else self.line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
