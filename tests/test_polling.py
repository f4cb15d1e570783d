"""ae.display.polling: the live view's interval grows with the room and its measured cost."""
from __future__ import annotations

from types import SimpleNamespace

from ae.display import polling
from ae.display.polling import FASTEST, SLOWEST, PollRate


class Clock:
    """The process's CPU seconds, set by the test (psutil's reading of a real process is noisy)."""

    def __init__(self):
        self.cpu = 0.0

    def cpu_times(self):
        return SimpleNamespace(user=self.cpu, system=0.0)


def test_a_small_room_polls_every_second():
    rate = PollRate(process=Clock())
    for session in range(5):
        rate.polled(f"s{session}")
    assert rate.interval() == FASTEST
    assert not rate.retune(FASTEST)


def test_the_interval_grows_with_watchers_times_measured_cost(monkeypatch):
    clock = Clock()
    now = [1000.0]
    monkeypatch.setattr(polling.time, "monotonic", lambda: now[0])
    rate = PollRate(core_share=0.5, process=clock)
    for second in range(4):  # 200 sessions, each update costing 5 ms of CPU
        now[0] += 1.0
        for session in range(200):
            clock.cpu += 0.005
            rate.polled(f"s{session}")
    assert 0.004 < rate.cost < 0.012  # smoothed towards 5 ms from the 11 ms starting guess
    assert rate.watchers == 200
    assert 2.0 <= rate.interval() <= 5.0  # 200 x cost / 0.5 of a core, in half seconds
    assert rate.retune(FASTEST)  # a session polling every second should slow down
    assert not rate.retune(rate.interval())
    assert not rate.retune(SLOWEST)  # speeding up waits for the session's next full run


def test_never_slower_than_five_seconds_and_leavers_stop_counting(monkeypatch):
    clock = Clock()
    now = [0.0]
    monkeypatch.setattr(polling.time, "monotonic", lambda: now[0])
    rate = PollRate(process=clock)
    for session in range(5000):
        clock.cpu += 0.05
        rate.polled(f"s{session}")
    now[0] += polling.MEASURE_EVERY
    rate.polled("s0")
    assert rate.interval() == SLOWEST
    now[0] += polling.WATCHER_TIMEOUT + polling.MEASURE_EVERY  # all but one left
    rate.polled("s1")
    assert rate.watchers == 1
