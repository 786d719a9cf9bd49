"""Evenly spaced actions at a rate per second, without a burst after a stall."""

from __future__ import annotations

import threading
import time


class Pacer:
    def __init__(self, rate: float, stop: threading.Event) -> None:
        self.stop = stop
        self.next_due = time.monotonic()
        self.interval = 0.0
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        """`rate` actions per second; 0 = no pacing (as fast as the server answers). A higher rate
        applies at once, not after the interval of the old one."""
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_due = min(self.next_due, time.monotonic() + self.interval)

    def seconds_until_due(self) -> float:
        return max(0.0, self.next_due - time.monotonic())

    def wait(self) -> None:
        """Sleeps until the next action is due (or `stop` is set). Lateness of up to one interval
        (timer slack) is made up, so the mean rate holds; a longer stall moves the schedule instead
        of being made up by a burst."""
        if not self.interval:
            return
        now = time.monotonic()
        if self.next_due > now:
            self.stop.wait(self.next_due - now)
        self.next_due = max(self.next_due, time.monotonic() - self.interval) + self.interval
