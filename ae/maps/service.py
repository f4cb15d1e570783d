"""Slow maps (UMAP, t-SNE) for every session: computed once, in the map process, and kept.

A map is known by `MapSpec`: the model and its save time, the method and its settings. The
first session to ask starts it; every other session asking for the same spec watches the
same task. A finished map is saved beside its model (`<entry>/maps/*.npz`), so a restart or
a second student loads it instead of computing it again; a map of an older save of the
model is ignored. A map stops when every session that asked for it has pressed Stop or left;
a stopped map is not saved.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ae.analysis.projection import Projection

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 1.0  # a map that has not stopped by then is ended with its process
MAPS_KEPT_IN_MEMORY = 24
MAP_FOLDER = "maps"


@dataclass(frozen=True)
class MapSpec:
    model_key: str
    saved_at: float
    method: str
    max_points: int | None
    seed: int = 0
    options: tuple = ()  # sorted (name, value) pairs, e.g. (("umap_seeded", False),)

    def file_name(self) -> str:
        settings = json.dumps([self.method, self.max_points, self.seed, list(self.options)])
        return f"{self.method}-{hashlib.sha256(settings.encode()).hexdigest()[:16]}.npz"


@dataclass(eq=False)
class MapTask:
    spec: MapSpec
    task_id: int
    state: str = "queued"  # queued, running, done, stopped, failed
    fraction: float = 0.0
    text: str = "waiting for the map process"
    error: str | None = None
    projection: Projection | None = None
    askers: set = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


def save_map(path: str | Path, projection: Projection, saved_at: float) -> None:
    """Write atomically: a reader finds the whole map or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with open(temporary, "wb") as file:
        np.savez(file, coordinates=projection.coordinates, indices=projection.indices,
                 settings=np.array(json.dumps(projection.settings)), method=np.array(projection.method),
                 seconds=np.array(projection.seconds), saved_at=np.array(saved_at))
    os.replace(temporary, path)


def load_map(path: Path, spec: MapSpec) -> Projection | None:
    """The saved map, or None if there is none, it is damaged, or it belongs to an older save."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            coordinates, indices = saved["coordinates"], saved["indices"]
            if float(saved["saved_at"]) != spec.saved_at or str(saved["method"]) != spec.method:
                return None
            if coordinates.ndim != 2 or coordinates.shape[1] != 2 or indices.shape != (len(coordinates),):
                raise ValueError(f"shapes {coordinates.shape} and {indices.shape}")
            return Projection(coordinates.astype(np.float32), indices.astype(np.int64), spec.method,
                              json.loads(str(saved["settings"])), float(saved["seconds"]))
    except Exception as error:  # a damaged file is computed again, not shown
        log.warning("Ignoring the damaged map %s: %s", path, error)
        return None


class MapService:
    """The web process's side: tasks by spec, the map process, and its messages."""

    def __init__(self, store_root: Path):
        self.store_root = Path(store_root)
        self.session_present: Callable[[str], bool] = lambda session: True
        self.ready = threading.Event()  # UMAP is compiled in the map process
        self._lock = threading.Lock()
        self._tasks: OrderedDict[MapSpec, MapTask] = OrderedDict()
        self._by_id: dict[int, MapTask] = {}
        self._next_id = 1
        self._process = None
        self._connection = None
        self._send_lock = threading.Lock()

    def path(self, spec: MapSpec) -> Path:
        return self.store_root / spec.model_key / MAP_FOLDER / spec.file_name()

    # ---- what pages ask ------------------------------------------------------------------
    def request(self, spec: MapSpec, codes: np.ndarray, session: str | None = None, again: bool = False) -> MapTask:
        """The task for this map: a finished one from memory or disk, the one already running,
        or a new one. A stopped or failed map starts again only when `again` is set."""
        with self._lock:
            task = self._tasks.get(spec)
            if task is not None and (task.active or task.state == "done" or not again):
                if task.active and session is not None:
                    task.askers.add(session)
                self._tasks.move_to_end(spec)
                return task
            task = self._new_task(spec)
            projection = load_map(self.path(spec), spec)
            if projection is not None:
                task.state, task.projection, task.fraction = "done", projection, 1.0
                task.finished.set()
                return task
            if session is not None:
                task.askers.add(session)
        self._send_task(task, codes)
        return task

    def _new_task(self, spec: MapSpec) -> MapTask:
        """Caller holds `_lock`."""
        task = MapTask(spec, self._next_id)
        self._next_id += 1
        self._tasks[spec] = task
        self._by_id[task.task_id] = task
        while len(self._tasks) > MAPS_KEPT_IN_MEMORY:
            _, old = self._tasks.popitem(last=False)
            if old.active:  # never forget a running map: put it back at the end
                self._tasks[old.spec] = old
                break
            self._by_id.pop(old.task_id, None)
        return task

    def stop(self, spec: MapSpec, session: str | None = None) -> str:
        """Withdraw this session's request; the map stops when nobody present still wants it.
        Returns what happened, in words."""
        with self._lock:
            task = self._tasks.get(spec)
            if task is None or not task.active:
                return "This map is not being computed."
            task.askers.discard(session)
            others = [asker for asker in task.askers if self.session_present(asker)]
            if others:
                return (f"{len(others)} other session(s) asked for this map too; it goes on until they stop it. "
                        "Your Stop is counted.")
            task.state, task.text = "stopped", "stopped"
        self._send(("stop", task.task_id))
        if not task.finished.wait(STOP_GRACE_SECONDS):
            log.warning("The map process did not stop in %.1f s; ending it", STOP_GRACE_SECONDS)
            self._restart()
        task.finished.set()
        return "Stopped."

    # ---- the process ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the map process now (it compiles UMAP's code), if it is not running."""
        with self._send_lock:
            if self._process is not None and self._process.poll() is None:
                return
            from ae.training.process import start_connected_process

            self.ready.clear()
            self._process, self._connection = start_connected_process("ae.maps.process", {}, "map process")
            threading.Thread(target=self._receive, args=(self._process, self._connection), name="ae-map-receiver",
                             daemon=True).start()

    def _send_task(self, task: MapTask, codes: np.ndarray) -> None:
        spec = task.spec
        self._send(("map", task.task_id, np.asarray(codes, dtype=np.float32), spec.method, spec.max_points, spec.seed,
                    dict(spec.options), str(self.path(spec)), spec.saved_at))

    def _send(self, message) -> None:
        try:
            self.start()
            with self._send_lock:
                self._connection.send(message)
        except Exception as error:  # the process could not start or has gone: the task says so
            if message[0] == "map":
                self._finish(message[1], "failed", f"The map process is not running ({error}).")

    def _receive(self, process, connection) -> None:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "ready":
                self.ready.set()
            elif kind == "progress":
                task = self._by_id.get(message[1])
                if task is not None and task.active:
                    task.state, task.fraction, task.text = "running", message[2], message[3]
            elif kind == "done":
                self._finish(message[1], "done")
            elif kind == "stopped":
                self._finish(message[1], "stopped")
            elif kind == "failed":
                self._finish(message[1], "failed", message[2])
        process.wait()
        with self._lock:
            lost = [task for task in self._by_id.values() if task.active]
        for task in lost:  # the process ended under them (a crash, or a Stop that had to end it)
            self._finish(task.task_id, "failed", f"The map process stopped (exit code {process.returncode}); "
                                                 "press Compute again.")

    def _finish(self, task_id: int, state: str, error: str | None = None) -> None:
        task = self._by_id.get(task_id)
        if task is None or task.finished.is_set():
            return
        if state == "done":
            projection = load_map(self.path(task.spec), task.spec)
            if projection is None:
                state, error = "failed", "The map was computed but could not be read back from the disk."
            task.projection = projection
        task.state = "stopped" if task.state == "stopped" else state
        task.error = None if task.state == "stopped" else error
        task.fraction = 1.0 if state == "done" else task.fraction
        task.finished.set()

    def _restart(self) -> None:
        """End the map process (it starts again on the next map); its queued maps fail and are
        asked for again by their pages."""
        with self._send_lock:
            process, self._process = self._process, None
        if process is not None:
            process.kill()

    def close(self) -> None:
        self._restart()


_services: dict[str, MapService] = {}
_services_lock = threading.Lock()


def get_map_service(store_root: Path) -> MapService:
    """The process-wide map service of one model store."""
    with _services_lock:
        key = str(Path(store_root).resolve())
        if key not in _services:
            _services[key] = MapService(Path(store_root))
        return _services[key]
