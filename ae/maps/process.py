"""The map process: `python -m ae.maps.process`, UMAP and t-SNE maps away from the web server.

A UMAP or t-SNE map of 10,000 codes keeps both cores busy for seconds; in the web process it
would hold every session's reruns. This process stays up, so UMAP's compiled code stays warm,
and it never loads TensorFlow (umap-learn would import it for its parametric model). It
computes one map at a time, in the order asked, and speaks `ae.maps.protocol`. A finished map
is saved (`ae.maps.files.save_map`) before `MapFinished("done")` is sent; a stopped one never is.
"""
from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time

from ae import ipc
from ae.maps.protocol import ComputeMap, MapFinished, MapProgress, MapReady, StopMap

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 0.25  # seconds between progress messages


class MapWorker:
    """The map process's side: maps queued in order, computed one at a time on a thread."""

    def __init__(self, connection):
        self.connection = connection
        self._send_lock = threading.Lock()
        self._stop_requests: set[int] = set()
        self._pending: queue.Queue[ComputeMap] = queue.Queue()
        self._current: int | None = None  # the task being computed

    def send(self, message) -> None:
        with self._send_lock:
            self.connection.send(message)

    def run(self) -> None:
        threading.Thread(target=self._compute_forever, name="ae-maps", daemon=True).start()
        ipc.serve_parent(self.connection, ipc.dispatcher({ComputeMap: self._pending.put, StopMap: self._stop}))

    def _stop(self, message: StopMap) -> None:
        self._stop_requests.add(message.task_id)
        if message.task_id != self._current:  # still waiting: it stops now
            self.send(MapFinished(message.task_id, "stopped"))

    def _compute_forever(self) -> None:
        from ae.analysis.projection import warm_up_umap

        if os.environ.get("AE_WARM_UMAP", "1") != "0":
            try:
                warm_up_umap()
            except Exception:  # the real map will report any problem
                log.warning("UMAP warm-up failed", exc_info=True)
        self.send(MapReady())
        while True:
            task = self._pending.get()
            if task.task_id in self._stop_requests:
                continue  # stopped while it waited: already answered
            self._current = task.task_id
            self.send(self._compute(task))

    def _compute(self, task: ComputeMap) -> MapFinished:
        from ae.analysis.projection import MapStopped, project
        from ae.maps.files import save_map

        last = [0.0]

        def progress(fraction: float, text: str) -> None:
            if task.task_id in self._stop_requests:
                raise MapStopped()
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL:
                last[0] = now
                self.send(MapProgress(task.task_id, float(fraction), text))

        spec = task.spec
        try:
            projection = project(task.codes, spec.method, max_points=spec.max_points, seed=spec.seed, progress=progress,
                                 **dict(spec.options))
            save_map(task.path, projection, spec.saved_at)
            return MapFinished(task.task_id, "done")
        except MapStopped:
            return MapFinished(task.task_id, "stopped")
        except Exception as error:  # reported in words; the process lives on
            log.exception("Map %s failed", spec.method)
            return MapFinished(task.task_id, "failed", f"{type(error).__name__}: {error}")


def main() -> None:
    connection = ipc.connect_back()
    sys.modules.setdefault("tensorflow", None)  # umap-learn's optional import fails fast instead
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s map-process %(levelname)s %(message)s")
    MapWorker(connection).run()


if __name__ == "__main__":
    main()
