"""How often a room's sessions poll the live view: as often as one web process can serve.

One Streamlit process serves every session on one interpreter, about one core whatever the
machine. If a room asks for more updates a second than that core can build, each session's
next timer tick arrives before its last update went out, Streamlit drops the stale update,
and almost nothing is delivered: a frozen page while training goes on (measured: 1.5% of
updates delivered at 100 watchers). So the interval grows with the room: watchers x the
measured cost of one update, divided by the share of a core the live view may use, between
one and five seconds. Every session still gets updates, just less often in a big room.

The cost is the web process's own CPU time per update (every thread: the script run, the
serialization and the websocket writes), measured over the last few seconds.
"""
from __future__ import annotations

import math
import threading
import time

import psutil

FASTEST = 1.0  # seconds between updates in a small room
SLOWEST = 5.0  # never slower: a watcher sees progress at least every 5 s when the process keeps up
CORE_SHARE = 0.6  # of one core, for live updates; the rest serves page loads and clicks
STARTING_COST = 0.011  # seconds of CPU per update before anything is measured (measured at 100 watchers)
WATCHER_TIMEOUT = 2 * SLOWEST + 2  # a session that has not polled for this long has left
MEASURE_EVERY = 3.0  # seconds between CPU readings


class PollRate:
    """The room's watchers, the measured cost of an update, and the interval that follows."""

    def __init__(self, core_share: float = CORE_SHARE, process: psutil.Process | None = None):
        self.core_share = core_share
        self.cost = STARTING_COST
        self._process = process or psutil.Process()
        self._lock = threading.Lock()
        self._watchers: dict[str, float] = {}  # session -> when it last polled
        self._updates = 0
        self._reading = (time.monotonic(), self._cpu())

    def _cpu(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def polled(self, session: str | None) -> None:
        """A session drew one live update."""
        now = time.monotonic()
        with self._lock:
            if session is not None:
                self._watchers[session] = now
            self._updates += 1
            since, cpu_before = self._reading
            if now - since < MEASURE_EVERY:
                return
            cpu = self._cpu()
            if self._updates:
                # Smoothed, and never below a floor, so one quiet reading cannot invite a flood.
                self.cost = max(0.001, 0.5 * self.cost + 0.5 * (cpu - cpu_before) / self._updates)
            self._updates, self._reading = 0, (now, cpu)
            self._watchers = {key: seen for key, seen in self._watchers.items() if now - seen < WATCHER_TIMEOUT}

    @property
    def watchers(self) -> int:
        with self._lock:
            return max(1, len(self._watchers))

    def interval(self) -> float:
        """Seconds between one session's updates, in half seconds, 1 to 5."""
        wanted = self.watchers * self.cost / self.core_share
        return min(SLOWEST, max(FASTEST, math.ceil(wanted * 2) / 2))

    def retune(self, current: float) -> bool:
        """Whether a session polling every `current` seconds should slow down to the room's
        interval now (a full rerun sends its new timer). Only a clear slow-down: speeding up
        waits for the session's next full run, since a room retuning at once would itself be
        the load it measures."""
        return self.interval() >= current * 1.5


_room = PollRate()


def room() -> PollRate:
    """This web process's room."""
    return _room
