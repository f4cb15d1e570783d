"""Slow maps (UMAP, t-SNE) for every session: computed once, in the map process, and kept.

A map is known by `MapSpec` (`ae.maps.protocol`): the model and its save time, the method and
its settings. The first session to ask starts it; every other session asking for the same spec watches the
same task. A finished map is saved beside its model (`<entry>/maps/*.npz`), so a restart or
a second student loads it instead of computing it again; a map of an older save of the
model is ignored. A map stops when every session that asked for it has pressed Stop or left;
a stopped map is not saved. A new map is refused, in words (`MapRefused`), past the bounds of
`ae.maps.bounds`: maps a session started and still waits for, and maps queued or computing in all.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ae import ipc
from ae.analysis.projection import Projection
from ae.askers import Askers
from ae.lru import LRU
from ae.maps.bounds import MapBounds, MapRefused
from ae.maps.files import load_map, map_path
from ae.maps.protocol import (MAP_HUNG_SECONDS, ComputeMap, MapFinished, MapHeartbeat, MapProgress, MapReady,
                              MapSpec, StopMap)

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 1.0  # a map that has not stopped by then is ended with its process
MAPS_KEPT_IN_MEMORY = 24
RESENDS = 2  # a map is sent again to a fresh map process at most this often (a crash loop ends)


def map_hung_seconds() -> float:
    from ae.runtime import env_setting

    return float(env_setting("AE_MAP_HUNG_SECONDS") or MAP_HUNG_SECONDS)


@dataclass(eq=False)
class MapTask:
    spec: MapSpec
    task_id: int
    state: str = "queued"  # queued, running, done, stopped, failed, refused (by a shared map process's full queue)
    fraction: float = 0.0
    text: str = "waiting for the map process"
    error: str | None = None
    projection: Projection | None = None
    askers: Askers = field(default_factory=lambda: Askers(what="map"))
    started_by: str | None = None  # the session whose request queued it: the map counts against it
    started: float = field(default_factory=time.monotonic)
    finished: threading.Event = field(default_factory=threading.Event)
    order: ComputeMap | None = None  # kept while active: sent again if its process ends under it
    note: str | None = None  # a done map kept in memory only, and why
    resends: int = 0

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


class MapService:
    """The web process's side: tasks by spec, the map process, and its messages."""

    def __init__(self, store_root: Path, bounds: MapBounds | None = None):
        self.store_root = Path(store_root)
        self.bounds = bounds or MapBounds.from_environment()
        self.session_present: Callable[[str], bool] = lambda session: True
        self.ready = threading.Event()  # UMAP is compiled in the map process
        self._lock = threading.Lock()
        self._tasks: LRU[MapSpec, MapTask] = LRU(MAPS_KEPT_IN_MEMORY, pinned=lambda task: task.active)
        self._next_id = 1
        self._process = None
        self._connection = None
        self._send_lock = threading.Lock()
        self._ended_for_a_stop = None  # the process (or connection) a Stop ended: its maps are sent again
        self._closed = False
        self._hung_for: float | None = None
        self._last_heard = time.monotonic()
        self.longest_silence = 0.0  # between two messages while a map was active: what the hang bound must exceed
        self._dispatch = ipc.dispatcher({MapReady: lambda _: self.ready.set(), MapProgress: self._on_progress,
                                         MapHeartbeat: lambda beat: None,
                                         MapFinished: self._on_finished})

    def path(self, spec: MapSpec) -> Path:
        return map_path(self.store_root, spec)

    # ---- what pages ask ------------------------------------------------------------------
    def request(self, spec: MapSpec, codes: np.ndarray, session: str | None = None, again: bool = False,
                lecturer: bool = False) -> MapTask:
        """The task for this map: a finished one from memory or disk, the one already queued or
        running (shared, counted for nobody again), or a new one; MapRefused, in words, if a new
        one is past the bounds. A stopped, failed or refused map starts again only when `again` is set.
        The lecturer's maps (and the engine's) are computed before any student's."""
        with self._lock:
            task = self._tasks.get(spec)
            if task is not None and (task.active or task.state == "done" or not again):
                if task.active:
                    task.askers.add(session)
                return task
            task = MapTask(spec, self._next_id, started_by=session)
            projection = load_map(self.path(spec), spec)
            if projection is None:
                active = [other for other in self._tasks.values() if other.active]
                started = sum(1 for other in active if other.started_by == session and session is not None
                              and other.askers.still_wants(session))  # its Stop gave the map to the others
                refusal = self.bounds.refusal(session, started, len(active))
                if refusal is not None:
                    raise MapRefused(refusal)
            self._next_id += 1
            self._tasks.put(spec, task)
            if projection is not None:
                task.state, task.projection, task.fraction = "done", projection, 1.0
                task.finished.set()
                return task
            task.askers.add(session)
        task.order = ComputeMap.of_codes(task.task_id, spec, codes, str(self.path(spec)),
                                         first=lecturer or session is None)
        self._send(task.order)
        return task

    def stop(self, spec: MapSpec, session: str | None = None) -> str:
        """This session's Stop, under the room's rule (`ae.askers`): the map stops when nobody
        present still wants it. Returns what happened, in words."""
        with self._lock:
            task = self._tasks.get(spec)
            if task is None or not task.active:
                return "This map is not being computed."
            answer = task.askers.stop(session, self.session_present, pressing=True)
            if not answer.stops:
                return answer.reason
            task.state, task.text = "stopped", "stopped"
        self._send(StopMap(task.task_id))
        if not task.finished.wait(STOP_GRACE_SECONDS) and self._process is not None:
            log.warning("The map process did not stop in %.1f s; ending it (other maps are sent again)",
                        STOP_GRACE_SECONDS)
            self._restart(for_a_stop=True)  # a shared map process is never ended: others' maps run in it
        task.finished.set()
        task.order = None
        return "Stopped."

    # ---- the process ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the map process now (it compiles UMAP's code), or attach to the shared one."""
        with self._send_lock:
            if self._connection is not None and not self._connection.closed and \
                    (self._process is None or self._process.poll() is None):
                return
            self.ready.clear()
            folder = ipc.services_folder()
            if folder is not None:
                self._process, self._connection = None, ipc.connect(folder, "maps")
            else:
                self._process, self._connection = ipc.start_child("ae.maps.process", {}, "map process")
            self._last_heard = time.monotonic()
            threading.Thread(target=self._receive, args=(self._process, self._connection), name="ae-map-receiver",
                             daemon=True).start()
            if self._process is not None:  # a shared map process is watched by ae.serve
                threading.Thread(target=self._watch, args=(self._process,), name="ae-map-watchdog", daemon=True).start()

    def _send(self, message) -> None:
        try:
            self.start()
            with self._send_lock:
                self._connection.send(message)
        except Exception as error:  # the process could not start or has gone: the task says so
            if isinstance(message, ComputeMap):
                self._finish(message.task_id, "failed", f"The map process is not running ({error}).")

    def _heard(self, message) -> None:
        now = time.monotonic()
        if any(task.active for task in self._tasks.values()):
            self.longest_silence = max(self.longest_silence, now - self._last_heard)
        self._last_heard = now
        self._dispatch(message)

    def _watch(self, process) -> None:
        """Liveness, not only death: a map process silent for `map_hung_seconds()` while a map is
        active (stopped, hung) is ended; the map it computed fails in words, the others are sent
        again to a fresh one (`_carry_on`)."""
        hung_after = map_hung_seconds()
        while process.poll() is None and not self._closed:
            time.sleep(1.0)
            silent = time.monotonic() - self._last_heard
            if silent > hung_after and any(task.active for task in self._tasks.values()) and process is self._process:
                log.error("The map process has been silent for %.0f s: ending it", silent)
                self._hung_for = silent
                self._restart()
                return

    def _receive(self, process, connection) -> None:
        ipc.receive_loop(connection, self._heard)
        connection.close()
        if process is not None:
            process.wait()
        with self._send_lock:
            for_a_stop = self._ended_for_a_stop is (process or connection)
        why = f"exit code {process.returncode}" if process is not None else "the shared map service went away"
        if self._hung_for:
            why, self._hung_for = f"it was silent for {self._hung_for:.0f} s: stopped or hung, and was ended", None
        for task in [task for task in self._tasks.values() if task.active]:
            self._carry_on(task, why, for_a_stop)

    def _carry_on(self, task: MapTask, why: str, for_a_stop: bool) -> None:
        """The map process ended under `task`: another session's Stop had to end it, or it died.
        A map it was computing when it died fails (it may be what killed it); every other one is
        sent again to a fresh process, so one session's Stop or one bad map ends nobody else's."""
        culprit = task.state == "running" and not for_a_stop
        if culprit or self._closed or task.order is None or task.resends >= RESENDS:
            self._finish(task.task_id, "failed", f"The map process stopped ({why}) while computing this map; "
                                                 "press Compute again.")
            return
        task.resends += 1
        task.state, task.fraction = "queued", 0.0
        task.text = "waiting: the map process restarted" + (" after another map's Stop" if for_a_stop else "")
        self._send(task.order)

    def _task(self, task_id: int) -> MapTask | None:
        return next((task for task in self._tasks.values() if task.task_id == task_id), None)

    def _on_progress(self, message: MapProgress) -> None:
        task = self._task(message.task_id)
        if task is not None and task.active:
            task.state, task.fraction, task.text = "running", message.fraction, message.text

    def _on_finished(self, message: MapFinished) -> None:
        self._finish(message.task_id, message.state, message.error, message.projection, message.note)

    def _finish(self, task_id: int, state: str, error: str | None = None, projection=None,
                note: str | None = None) -> None:
        task = self._task(task_id)
        if task is None or task.finished.is_set():
            return
        if state == "done":
            task.note = note
            projection = projection if projection is not None else load_map(self.path(task.spec), task.spec)
            if projection is None:
                state, error = "failed", "The map was computed but could not be read back from the disk."
            task.projection = projection
        task.state = "stopped" if task.state == "stopped" else state
        task.error = None if task.state == "stopped" else error
        task.fraction = 1.0 if state == "done" else task.fraction
        task.order = None  # its codes leave memory with it
        task.finished.set()

    def _restart(self, for_a_stop: bool = False) -> None:
        """End the map process (it starts again on the next map). For a Stop, the maps it held
        for others are sent again to the fresh one (`_carry_on`)."""
        with self._send_lock:
            process, self._process = self._process, None
            connection, self._connection = self._connection, None
            self._ended_for_a_stop = (process or connection) if for_a_stop else None
        if process is not None:
            process.kill()
        elif connection is not None:
            connection.close()

    def close(self) -> None:
        self._closed = True
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
