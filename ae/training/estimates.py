"""How long a run will take, and when a queued job will start, from this server's measured runs.

A run's time is measured seconds per training digit (the median steady epoch of earlier runs
of the same architecture and batch size) times digits and epochs, plus the first epoch's extra
(compilation). No comparable run yet means no estimate: better no promise than a wrong one.
A queued job's wait is the queue played out over the slots: each job ahead takes the slot that
frees first.
"""
from __future__ import annotations

import heapq
from typing import Iterable

from ae.model.config import TrainingConfig
from ae.model.history import History


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def run_seconds(config: TrainingConfig, epochs: float, measured: Iterable[tuple[TrainingConfig, History]],
                first_epoch: bool = True) -> float | None:
    """Seconds for `epochs` epochs of `config` (with the first epoch's compilation if
    `first_epoch`), from (config, history) pairs of earlier runs; None if none compares."""
    per_digit, first_extra = [], []
    for other, history in measured:
        seconds = history.epoch_seconds
        if (other.architecture, other.batch_size) != (config.architecture, config.batch_size) or not seconds:
            continue
        steady = _median(list(seconds[1:])) if len(seconds) > 1 else seconds[0]
        per_digit.append(steady / other.train_size)
        first_extra.append(max(0.0, seconds[0] - steady))
    if not per_digit:
        return None
    return _median(per_digit) * config.train_size * max(0.0, epochs) + (_median(first_extra) if first_epoch else 0.0)


def queue_waits(running_left: list[float | None], queued_runs: list[float | None], slots: int) -> list[float | None]:
    """Seconds until each queued job starts, in queue order: `running_left` are the running
    jobs' remaining seconds, `queued_runs` the queued jobs' run times. Unknown (None) from the
    first job whose wait depends on a time nobody measured."""
    if any(left is None for left in running_left):
        return [None] * len(queued_runs)
    free_at = sorted(running_left) + [0.0] * max(0, slots - len(running_left))
    heapq.heapify(free_at)
    waits: list[float | None] = []
    known = True
    for run in queued_runs:
        start = heapq.heappop(free_at)
        waits.append(start if known else None)
        if run is None:
            known = False
            run = 0.0
        heapq.heappush(free_at, start + run)
    return waits
