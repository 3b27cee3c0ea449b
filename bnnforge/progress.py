"""Progress lines on standard error: rewritten in place on a terminal, sparse in a log."""

import sys
import time

__all__ = ["Progress", "step"]


def step(text):
    """A new step of a flow, on its own line."""
    print(f"==> {text}", file=sys.stderr, flush=True)


class Progress:
    """``update(done, total, note)`` prints ``label [done/total] note``; on a terminal the line
    is rewritten, elsewhere a line is printed at most every ``every`` seconds and at the end."""

    def __init__(self, label, every=5.0, stream=None):
        self.label, self.every = label, every
        self._stream = stream
        self.tty = (stream or sys.stderr).isatty()
        self.last = 0.0

    def update(self, done, total, note=""):
        now = time.monotonic()
        final = done >= total
        if not (self.tty or final or now - self.last >= self.every):
            return
        self.last = now
        text = f"    {self.label} [{done}/{total}] {note}".rstrip()
        stream = self._stream or sys.stderr  # looked up now: a simulator run may swap it
        if self.tty:
            print("\r" + text.ljust(78), end="\n" if final else "", file=stream, flush=True)
        else:
            print(text, file=stream, flush=True)
