"""Progress lines of a cold decode (``load_idc(verbose=1)``), written to stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def say(text: str, stream: TextIO | None = None) -> None:
    """Write one ``load_idc:`` line to ``stream`` (default: the current stderr)."""
    print(f"load_idc: {text}", file=stream if stream is not None else sys.stderr, flush=True)


class Progress:
    """Reports patches decoded, the rate and the time left, a few lines per load.

    A line is written when at least ``every_s`` seconds *and* ``every_frac`` of the
    total have passed since the last one, so a load prints at most about ten lines
    however long it takes, and a quick one only its first and last.
    """

    def __init__(
        self,
        total: int,
        where: str,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 2.0,
        every_frac: float = 0.1,
    ) -> None:
        self.total, self.where = total, where
        self._stream, self._clock = stream, clock
        self.every_s, self.every_frac = every_s, every_frac
        self.done = 0
        self._t0 = self._last_t = clock()
        self._last_done = 0

    def _write(self, text: str) -> None:
        say(text, self._stream)

    def start(self, how: str) -> None:
        self._write(f"decoding {self.total:,} patches under {self.where} ({how})")
        self._t0 = self._last_t = self._clock()

    def advance(self, n: int) -> None:
        """Count ``n`` more patches decoded; write a line if one is due."""
        self.done += n
        now = self._clock()
        due = now - self._last_t >= self.every_s
        if not due or self.done - self._last_done < self.every_frac * self.total:
            return
        if self.done >= self.total:
            return  # finish() says the rest
        rate = self.done / max(now - self._t0, 1e-9)
        left = (self.total - self.done) / rate
        self._write(
            f"{self.done:,}/{self.total:,} patches decoded ({100 * self.done / self.total:.0f}%), "
            f"{rate:,.0f} patches/s, about {left:,.0f} s left"
        )
        self._last_t, self._last_done = now, self.done

    def finish(self) -> None:
        elapsed = self._clock() - self._t0
        rate = self.done / max(elapsed, 1e-9)
        self._write(f"decoded {self.done:,} patches in {elapsed:.1f} s ({rate:,.0f} patches/s)")
