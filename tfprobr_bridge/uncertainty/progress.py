"""Progress of a long computation, as keras3 users expect it.

``verbose``: ``"auto"`` draws a bar where a person watches (a terminal or a
notebook) and writes one line when the work is done otherwise, so logs hold
no terminal escapes; ``1`` always the bar, ``2`` always the one line, ``0``
nothing. The bar shows the steps done and an estimate of the time left.
"""

import sys
import time

VERBOSE_EXPECTED = '"auto", 0 (silent), 1 (a progress bar) or 2 (one line when done)'


def verbosity(value, name="verbose"):
    """``value`` as 0, 1 or 2 (``"auto"`` decided here); raises in Keras's form."""
    if isinstance(value, str):
        if value.lower() != "auto":
            raise ValueError(f"`{name}` must be {VERBOSE_EXPECTED}. Received: {name}={value!r}")
        return 1 if _interactive() else 2
    if isinstance(value, bool):
        return int(value)
    try:
        level = int(value)
    except (TypeError, ValueError):
        level = None
    if level is None or level != value or level not in (0, 1, 2):
        error = ValueError if isinstance(value, (int, float)) else TypeError
        raise error(f"`{name}` must be {VERBOSE_EXPECTED}. Received: {name}={value!r}")
    return level


def _interactive():
    stream = sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules


class Progress:
    """Reports ``total`` steps (None: unknown) of the task ``what`` at ``level`` 0, 1 or 2."""

    def __init__(self, what, total, level, unit="batch", stream=None):
        self.what = what
        self.total = total
        self.level = level
        self.unit = unit
        self.stream = stream or sys.stdout
        self.done = 0
        self.start = time.perf_counter()
        self._dynamic = level == 1 and (
            bool(getattr(self.stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules
        )
        self._last_line = 0.0

    def update(self, steps=1):
        self.done += steps
        if self.level != 1:
            return
        now = time.perf_counter()
        finished = self.total is not None and self.done >= self.total
        # A bar redraws in place; written to a log, it adds a line at most every 10 s.
        if not self._dynamic and not finished and now - self._last_line < 10.0:
            return
        self._last_line = now
        self._write(self._bar(now - self.start), end="" if self._dynamic else "\n")

    def finish(self, detail=""):
        elapsed = time.perf_counter() - self.start
        if self.level == 1:
            if self._dynamic:
                self._write("\n", end="", carriage=False)
        elif self.level == 2:
            steps = f"{self.done} {self.unit}{'es' if self.unit.endswith('h') else 's'}"
            steps = steps if self.done != 1 else f"1 {self.unit}"
            self._write(f"{self.what}: {steps}{detail} in {_duration(elapsed)}", end="\n",
                        carriage=False)

    def _bar(self, elapsed):
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(round(30 * fraction))
            bar = "=" * max(filled - 1, 0) + (">" if filled < 30 else "=") + "." * (30 - filled)
            left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            timing = (f"{_duration(elapsed)}" if self.done >= self.total
                      else f"{_duration(elapsed)}, about {_duration(left)} left")
            return f"{self.what} {self.done}/{self.total} [{bar}] {timing}"
        return f"{self.what} {self.done} {self.unit}{'es' if self.unit.endswith('h') else 's'}, " \
               f"{_duration(elapsed)}"

    def _write(self, text, end, carriage=True):
        prefix = "\r" if carriage and self._dynamic else ""
        self.stream.write(prefix + text + end)
        self.stream.flush()


def _duration(seconds):
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
