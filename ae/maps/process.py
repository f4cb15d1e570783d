"""The map process: `python -m ae.maps.process`, UMAP and t-SNE maps away from the web server.

A UMAP or t-SNE map of 10,000 codes keeps both cores busy for seconds; in the web process it
would hold every session's reruns. This process stays up, so UMAP's compiled code stays warm,
and it never loads TensorFlow (umap-learn would import it for its parametric model). It
computes one map at a time, in the order asked, and speaks `ae.maps.protocol`. A finished map
is saved (`ae.maps.files.save_map`) before `MapFinished("done")` is sent; a stopped one never is.
It holds `AE_MAPS_TOTAL` maps at most, queued or computing, from every web process together
(`ae.maps.bounds`); a new map beyond that is answered `MapFinished("refused")`, in words.

A child of one web process by default; with `ae.serve`, one process that every web process
attaches to. The same map asked for through two web processes is computed once, for both, and
stops only when every web process that asked for it has sent StopMap (each applies the room's
rule, `ae.askers`, to its own sessions first) or gone.
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from ae import cluster, ipc
from ae.maps.bounds import MapBounds
from ae.maps.protocol import MAP_HEARTBEAT_SECONDS, ComputeMap, MapFinished, MapHeartbeat, MapProgress, MapReady, StopMap

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 0.25  # seconds between progress messages


class MapWorker:
    """The map process's side: maps queued in order, computed one at a time on a thread."""

    def __init__(self, bounds: MapBounds | None = None):
        self.bounds = bounds or MapBounds.from_environment()
        self.clients = ipc.Clients()
        self._lock = threading.Lock()
        self._waiting: dict[str, list[tuple[object, int]]] = {}  # map file -> (client, its task id) waiting for it
        self._pending: queue.PriorityQueue = queue.PriorityQueue()  # (0: the lecturer's, 1: a student's; order, map)
        self._order = itertools.count()
        self._warm = threading.Event()
        threading.Thread(target=self._compute_forever, name="ae-maps", daemon=True).start()
        threading.Thread(target=self._beat_forever, name="ae-map-heartbeat", daemon=True).start()

    def _beat_forever(self) -> None:
        """Silence means this process is stopped or hung (`MapService._watch`)."""
        while True:
            time.sleep(MAP_HEARTBEAT_SECONDS)
            self.clients.broadcast(MapHeartbeat())

    def serve_client(self, connection) -> None:
        """One web process, until it goes (`ipc.serve` runs one per web process)."""
        with self._lock:
            self.clients.add(connection)
            if self._warm.is_set():
                self.clients.send(connection, MapReady())
        handlers = {ComputeMap: self._compute_map, StopMap: self._stop}
        ipc.receive_loop(connection, lambda message: handlers[type(message)](connection, message))
        self.clients.remove(connection)
        with self._lock:  # its maps no longer wait for it; a map nobody waits for stops
            for waiting in self._waiting.values():
                waiting[:] = [(client, task_id) for client, task_id in waiting if client is not connection]

    def _compute_map(self, connection, message: ComputeMap) -> None:
        with self._lock:
            waiting = self._waiting.get(message.path)
            if waiting:  # asked for through another web process too: computed once, for both
                waiting.append((connection, message.task_id))
                return
            refusal = self.bounds.queue_full(sum(1 for askers in self._waiting.values() if askers))
            if refusal is not None:  # a stopped map still in the queue waits for nobody: not counted
                self.clients.send(connection, MapFinished(message.task_id, "refused", refusal))
                return
            self._waiting[message.path] = [(connection, message.task_id)]
        self._pending.put((0 if message.first else 1, next(self._order), message))

    def _stop(self, connection, message: StopMap) -> None:
        with self._lock:
            for waiting in self._waiting.values():
                if (connection, message.task_id) in waiting:
                    waiting.remove((connection, message.task_id))
            self.clients.send(connection, MapFinished(message.task_id, "stopped"))

    def _tell(self, path: str, make) -> None:
        """Send each client waiting for `path` its own message (`make(task_id)`)."""
        with self._lock:
            for client, task_id in self._waiting.get(path, []):
                self.clients.send(client, make(task_id))

    def _wanted(self, path: str) -> bool:
        with self._lock:
            return bool(self._waiting.get(path))

    def _compute_forever(self) -> None:
        from ae.analysis.projection import warm_up_umap

        if os.environ.get("AE_WARM_UMAP", "1") != "0" and cluster.ray_address() is None:  # a cluster's nodes compile their own
            try:
                warm_up_umap()
            except Exception:  # the real map will report any problem
                log.warning("UMAP warm-up failed", exc_info=True)
        with self._lock:
            self._warm.set()
            self.clients.broadcast(MapReady())
        while True:
            _, _, task = self._pending.get()
            if not self._wanted(task.path):  # stopped while it waited: already answered
                with self._lock:
                    if not self._waiting.get(task.path):  # nobody asked again meanwhile
                        self._waiting.pop(task.path, None)
                continue
            finished = self._compute(task)
            self._tell(task.path, lambda task_id: replace(finished, task_id=task_id))
            with self._lock:
                self._waiting.pop(task.path, None)

    def _compute(self, task: ComputeMap) -> MapFinished:
        from ae.analysis.projection import MapStopped
        from ae.maps.files import save_map

        last = [0.0]

        def progress(fraction: float, text: str) -> None:
            if not self._wanted(task.path):
                raise MapStopped()
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL:
                last[0] = now
                self._tell(task.path, lambda task_id: MapProgress(task_id, float(fraction), text))

        spec = task.spec
        try:
            if cluster.ray_address() is not None:  # computed and saved on a cluster's node
                from ae.maps.ray_maps import compute_on_cluster

                return compute_on_cluster(task, lambda: self._wanted(task.path), progress)
            projection = task.project(progress)
            try:
                save_map(task.path, projection, spec.saved_at)
            except OSError as error:  # computed all the same: kept in memory and shown, with one sentence
                return MapFinished(task.task_id, "done", projection=projection, note=unsaved_note(error, task.path))
            return MapFinished(task.task_id, "done")
        except MapStopped:
            return MapFinished(task.task_id, "stopped")
        except Exception as error:  # reported in words; the process lives on
            log.exception("Map %s failed", spec.method)
            return MapFinished(task.task_id, "failed", f"{type(error).__name__}: {error}")


def unsaved_note(error: OSError, path: str) -> str:
    from ae.maps.files import ModelNotOnDisk
    from ae.storage.store import disk_problem

    if isinstance(error, ModelNotOnDisk):
        return "This map is kept in memory only, as its model is: it is computed again after a restart."
    problem = disk_problem(error, Path(path).parent.parent.parent)
    return f"This map is kept in memory only: {problem}. It is computed again after a restart."


def main() -> None:
    settings = ipc.child_arguments()
    shared = settings.get("services_folder")
    connection = None if shared else ipc.connect_back()
    sys.modules.setdefault("tensorflow", None)  # umap-learn's optional import fails fast instead
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s map-process %(levelname)s %(message)s")
    worker = MapWorker()
    ipc.serve("maps", worker.serve_client, connection)


if __name__ == "__main__":
    main()
