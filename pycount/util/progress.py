"""A dependency-free progress bar for long loops (prepare, train, eval) that prints to stderr."""
from __future__ import annotations

import contextlib
import sys
import time

from pycount import config


class Progress:
    """`with Progress(total, "writing") as bar: bar.update(1, loss=0.3)`.

    Redraws at most ~10 times a second on a terminal; when stderr is not a terminal (CI, logs) it
    prints a line every 10 % instead, so logs stay short, and at least every
    config.PROGRESS_LOG_SECONDS (a 20,000-iteration CPU training's tenth is over an hour).
    `done` is work finished before this bar began (a resumed training): it counts towards the
    fraction but not towards the rate, so the rate and the eta describe this session only.
    """

    def __init__(self, total: int, label: str, unit: str = "it", stream=None, done: int = 0):
        self.total, self.label, self.unit = max(int(total), 0), label, unit
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.n = self.done = max(int(done), 0)
        self.info, self.start, self._last, self._decile = "", time.monotonic(), 0.0, -1
        self._logged = self.start             # off a terminal: when the last line was written

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._draw(final=True)

    def update(self, k: int = 1, **info):
        self.n += k
        if info:
            self.info = "  ".join(f"{key}={val:.4g}" if isinstance(val, float) else f"{key}={val}"
                                  for key, val in info.items())
        self._draw()

    @contextlib.contextmanager
    def item(self, name: str):
        """While one item is worked on (a large image counted): the share of it done that the
        counting loops report (step) shown after the rate as "name: 40%", redrawn as the bar
        redraws (on a terminal at most ~10 times a second, in a log every
        config.PROGRESS_LOG_SECONDS: a step per batch costs nothing measurable); taken away
        from the next line when the item ends."""
        def report(fraction: float) -> None:
            self.info = f"{name}: {100 * fraction:.0f}%"
            self._draw()
        try:
            with within(report):
                yield
        finally:
            self.info = ""

    def _draw(self, final: bool = False):
        now = time.monotonic()
        elapsed = max(now - self.start, 1e-9)
        rate = (self.n - self.done) / elapsed
        frac = self.n / self.total if self.total else 1.0
        eta = (self.total - self.n) / rate if rate > 0 and self.total else 0.0
        if elapsed >= config.PROGRESS_RATE_AFTER_SECONDS or final or self.n >= self.total:
            speed = f"{rate:.1f} {self.unit}/s, {elapsed:.0f}s elapsed, eta {eta:.0f}s"
        else:                           # too short to time: no rate rather than a wild one
            speed = f"- {self.unit}/s, {elapsed:.0f}s elapsed, eta -"
        text = (f"{self.label}: {self.n}/{self.total} {self.unit} ({100 * frac:3.0f}%) {speed}  "
                f"{self.info}")
        if self.tty:
            if final or now - self._last > 0.1:
                width = 24
                fill = int(width * min(frac, 1.0))
                self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {text}\033[K")
                if final:
                    self.stream.write("\n")
                self.stream.flush()
                self._last = now
        else:
            decile = int(10 * min(frac, 1.0))
            due = now - self._logged >= config.PROGRESS_LOG_SECONDS and not final
            if decile != self._decile or final or due:
                if not (final and decile == self._decile):
                    self.stream.write(text + "\n")
                    self.stream.flush()
                    self._logged = now
                self._decile = decile


# Progress inside one item of a bar (one very large image being counted): the counting loops
# report the share of the current image done through step(); a bar that shows it has set a
# reporter with within(). Without one (training's validation, a test) step() does nothing.
_reporters: list = []


@contextlib.contextmanager
def within(report):
    """While inside: step(done, total) calls report(fraction of the current item done)."""
    _reporters.append(report)
    try:
        yield
    finally:
        _reporters.pop()


@contextlib.contextmanager
def span(lo: float, hi: float):
    """The share lo..hi of the current item: a step inside it reports lo + (hi - lo) x its
    fraction (the windows of an image, then the missing tiles of its tiling estimate)."""
    if not _reporters:
        yield
        return
    outer = _reporters[-1]
    outer(lo)
    with within(lambda f: outer(lo + (hi - lo) * f)):
        yield
    outer(hi)                           # done, whether or not its work reported steps


def part(i: int, n: int):
    """The i-th of n equal parts of the current item (one of test-time augmentation's
    transforms): a step inside it reports (i + its fraction) / n."""
    return span(i / n, (i + 1) / n)


def step(done: int, total: int) -> None:
    """`done` of `total` units of the current item's work finished (see within)."""
    if _reporters and total > 0:
        _reporters[-1](min(done / total, 1.0))

