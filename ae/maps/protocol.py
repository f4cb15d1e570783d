"""What the web side and the map process say to each other, and what names a map.

A map is known by its `MapSpec`: the model and its save time, the method and its settings.
Messages are plain frozen dataclasses with field names, dispatched by type (`ae.ipc.dispatcher`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np


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


# ---- web side -> map process ------------------------------------------------------------------
@dataclass(frozen=True)
class ComputeMap:
    """Compute `spec` and save it to `path` (`ae.maps.files.save_map`). `codes` holds only the
    rows the map uses (float32, `indices` of the `of` test codes), not all of them: a message is
    up to 10x smaller, and the map the same as from every code (`project` picks these rows)."""

    task_id: int
    spec: MapSpec
    codes: np.ndarray
    path: str
    indices: np.ndarray
    of: int
    first: bool = False  # the lecturer's (or the engine's): computed before every student's map

    @classmethod
    def of_codes(cls, task_id: int, spec: MapSpec, codes: np.ndarray, path: str, first: bool = False) -> "ComputeMap":
        from ae.analysis.projection import DEFAULT_MAX_POINTS, SLOW_METHODS, subsample

        codes = np.asarray(codes)
        default = DEFAULT_MAX_POINTS if spec.method in SLOW_METHODS else None  # as `project` picks
        indices = subsample(len(codes), default if spec.max_points is None else spec.max_points, spec.seed)
        return cls(task_id, spec, np.asarray(codes[indices], dtype=np.float32), path, indices, len(codes), first)

    def project(self, progress):
        """The map of all the codes, computed from the rows sent."""
        from dataclasses import replace

        from ae.analysis.projection import project

        spec = self.spec
        made = project(self.codes, spec.method, max_points=len(self.codes), seed=spec.seed, progress=progress,
                       **dict(spec.options))
        return replace(made, indices=self.indices[made.indices], settings={**made.settings, "of": self.of})


@dataclass(frozen=True)
class StopMap:
    task_id: int


# ---- map process -> web side ------------------------------------------------------------------
@dataclass(frozen=True)
class MapHeartbeat:
    """Every second, from a thread of its own: the map process is alive and not stopped."""


MAP_HEARTBEAT_SECONDS = 1.0
MAP_HUNG_SECONDS = 60  # numba's compiled loops may hold the GIL for seconds: a wide margin (AE_MAP_HUNG_SECONDS)


@dataclass(frozen=True)
class MapReady:
    """UMAP's code is compiled: a first UMAP will not wait for numba."""


@dataclass(frozen=True)
class MapProgress:
    task_id: int
    fraction: float
    text: str


@dataclass(frozen=True)
class MapFinished:
    """A map ended: "done" (already saved), "stopped" (never saved), "failed" (with the error) or
    "refused" (never queued: the queue was full; `error` says so, in words)."""

    task_id: int
    state: str
    error: str | None = None
    projection: object = None  # a done map that could not be saved (an in-memory model, a full disk): here instead
    note: str | None = None  # why it is in memory only, in one sentence
