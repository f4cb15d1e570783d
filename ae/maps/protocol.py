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
    """Compute `spec` from `codes` and save it to `path` (`ae.maps.files.save_map`)."""

    task_id: int
    spec: MapSpec
    codes: np.ndarray
    path: str


@dataclass(frozen=True)
class StopMap:
    task_id: int


# ---- map process -> web side ------------------------------------------------------------------
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
    """A map ended: "done" (already saved), "stopped" (never saved) or "failed" (with the error)."""

    task_id: int
    state: str
    error: str | None = None
