"""Maps on a Ray cluster: the map service hands each UMAP or t-SNE to the cluster as a Ray task.

With `AE_RAY_ADDRESS` set, `ae.maps.process` still keeps the queue, the dedupe and the Stop
rule, but computes each map as a task on a node with a free CPU (`compute_on_cluster`). The
task saves the map into the shared model store, where any web process on any machine reads
it. Its progress goes through a small named actor, the `MapBoard`, which the map service reads
four times a second; a Stop cancels the task (a stopped map is never saved).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable

from ae import cluster
from ae.analysis.projection import MapStopped
from ae.maps.protocol import ComputeMap, MapFinished

BOARD_NAME = "map-progress"
POLL_SECONDS = 0.25
MAX_RETRIES = 2  # a map whose node dies is computed again elsewhere


class MapBoard:
    """The latest progress of each map computing on the cluster (a named actor, no CPU)."""

    def __init__(self):
        self._progress: dict[str, tuple[float, str]] = {}

    def post(self, token: str, fraction: float, text: str) -> None:
        self._progress[token] = (fraction, text)

    def read(self, token: str) -> tuple[float, str] | None:
        return self._progress.get(token)

    def forget(self, token: str) -> None:
        self._progress.pop(token, None)


def project_and_save(task: ComputeMap, board, token: str) -> str:
    """A Ray task: compute the map on this node and save it into the shared store."""
    sys.modules.setdefault("tensorflow", None)  # umap-learn's optional import fails fast (own worker pool)
    from ae.maps.files import save_map

    where, last = cluster.node_name(), [0.0]

    def progress(fraction: float, text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= POLL_SECONDS:
            last[0] = now
            board.post.remote(token, float(fraction), f"{text} (on {where})")

    projection = task.project(progress)
    save_map(task.path, projection, task.spec.saved_at)
    return where


def compute_on_cluster(task: ComputeMap, wanted: Callable[[], bool], progress: Callable[[float, str], None]) -> MapFinished:
    """Run one map on the cluster; "done" once it is saved, "stopped" if nobody wants it any more."""
    ray = cluster.connect()
    board = ray.remote(MapBoard).options(name=BOARD_NAME, namespace=cluster.NAMESPACE, get_if_exists=True,
                                         lifetime="detached", num_cpus=0, max_concurrency=64).remote()
    token = f"{os.getpid()}-{task.task_id}-{time.monotonic_ns()}"
    environment = {"env_vars": {"PYTHONPATH": cluster.python_path(), "AE_MAP_TASK": "1", "OMP_NUM_THREADS": "1",
                                "NUMBA_NUM_THREADS": "1"}}
    reference = ray.remote(project_and_save).options(num_cpus=1, max_retries=MAX_RETRIES, runtime_env=environment) \
        .remote(task, board, token)
    try:
        progress(0.0, "waiting for a free CPU on the cluster")
        while True:
            done, _ = ray.wait([reference], timeout=POLL_SECONDS)
            if done:
                ray.get(reference)  # raises the task's error, if any
                return MapFinished(task.task_id, "done")
            if not wanted():
                raise MapStopped()
            posted = ray.get(board.read.remote(token))
            if posted is not None:
                progress(*posted)  # raises MapStopped too, once nobody wants the map
    except MapStopped:
        ray.cancel(reference, force=True)
        return MapFinished(task.task_id, "stopped")
    finally:
        board.forget.remote(token)
