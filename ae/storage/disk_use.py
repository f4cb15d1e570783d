"""How much disk the model cache takes, in one line a lecturer can read before the room fills it.

Measured from the files themselves (every model folder with its weights, replays and maps, and
the checkpoints of unfinished runs), not from the records, so leftovers and damaged entries
count too. The quota and the pins are the caller's: this only reports against them.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ae.storage.checkpoint import checkpoint_dir
from ae.storage.store import ModelStore


@dataclass(frozen=True)
class DiskUse:
    models: dict[str, int]  # model key -> bytes of its folder
    checkpoint_bytes: int  # unfinished runs' checkpoints, under .checkpoints
    other_bytes: int  # anything else under the store's root (a save's leftovers)
    free_bytes: int | None  # free on the store's disk; None if it cannot be told

    @property
    def total_bytes(self) -> int:
        return sum(self.models.values()) + self.checkpoint_bytes + self.other_bytes


def folder_bytes(path: Path) -> int:
    """Bytes of the files under `path` (or of the file itself); what vanishes meanwhile counts 0."""
    if path.is_file():
        try:
            return path.stat().st_size
        except OSError:
            return 0
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def model_bytes(store: ModelStore, key: str) -> int:
    """What deleting a model frees: its folder and any checkpoint under its key."""
    return folder_bytes(store.entry_dir(key)) + folder_bytes(checkpoint_dir(store, key))


def free_bytes(path: Path) -> int | None:
    """Free space on the disk that holds `path`, asked of its nearest existing folder."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def measure(store: ModelStore) -> DiskUse:
    models: dict[str, int] = {}
    checkpoints = other = 0
    if store.root.is_dir():
        for path in store.root.iterdir():
            if path.name == ".checkpoints":
                checkpoints += folder_bytes(path)
            elif path.is_dir() and not path.name.startswith("."):
                models[path.name] = folder_bytes(path)
            else:
                other += folder_bytes(path)
    return DiskUse(models, checkpoints, other, free_bytes(store.root))


def size_text(count: float) -> str:
    """Decimal units, as the quota is given (AE_CACHE_QUOTA_MB=2000 is 2 GB): 412 MB, 3.1 GB."""
    for unit, name in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if count >= unit:
            value = count / unit
            return f"{value:.1f}".removesuffix(".0") + f" {name}" if value < 10 else f"{value:.0f} {name}"
    return f"{int(count)} bytes"


def disk_use_line(store: ModelStore, pinned: set[str], quota_bytes: int | None = None) -> str:
    """e.g. "Model cache: 412 MB in 37 models (18 pinned), 3.1 GB free on its disk; quota 2 GB." """
    use = measure(store)
    count = len(use.models)
    line = (f"Model cache: {size_text(use.total_bytes)} in {count} model{'' if count == 1 else 's'} "
            f"({len(pinned & use.models.keys())} pinned)")
    if use.checkpoint_bytes:
        line += f", {size_text(use.checkpoint_bytes)} of it checkpoints of unfinished runs"
    line += f", {size_text(use.free_bytes)} free on its disk" if use.free_bytes is not None else ""
    if quota_bytes is None:
        return line + "; no quota."
    over = use.total_bytes - quota_bytes
    return line + (f"; quota {size_text(quota_bytes)}, over it by {size_text(over)}." if over > 0
                   else f"; quota {size_text(quota_bytes)}.")
