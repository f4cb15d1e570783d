"""Maps saved beside their model (`<entry>/maps/*.npz`), so a restart or a second student loads
a map instead of computing it again. Written atomically; read with `allow_pickle=False`."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ae.analysis.projection import Projection
from ae.maps.protocol import MapSpec

log = logging.getLogger(__name__)
MAP_FOLDER = "maps"


def map_path(store_root: Path, spec: MapSpec) -> Path:
    return Path(store_root) / spec.model_key / MAP_FOLDER / spec.file_name()


class ModelNotOnDisk(OSError):
    """The map's model has no saved entry (kept in memory, or deleted meanwhile): the map is not
    written, so a map never creates a folder that would read as a damaged model."""


def save_map(path: str | Path, projection: Projection, saved_at: float) -> None:
    """Write atomically: a reader finds the whole map or none, and a failed write leaves no
    file behind. ModelNotOnDisk if the model's entry has no record; OSError if the disk refuses."""
    from ae.storage.atomic import write_atomically
    from ae.storage.store import RECORD_FILE

    path = Path(path)
    entry = path.parent.parent
    if not (entry / RECORD_FILE).is_file():
        raise ModelNotOnDisk(f"the model {entry.name} is not saved on disk")
    path.parent.mkdir(exist_ok=True)
    write_atomically(path, lambda file: np.savez(
        file, coordinates=projection.coordinates, indices=projection.indices,
        settings=np.array(json.dumps(projection.settings)), method=np.array(projection.method),
        seconds=np.array(projection.seconds), saved_at=np.array(saved_at)))


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
