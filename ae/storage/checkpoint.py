"""Checkpoints at each epoch's end, so a training process killed mid-run resumes, not restarts.

A checkpoint is the training model's weights, the optimizer's state (Adam's moments, so the
resumed run continues as it would have) and the job's history so far. It lives apart from
saved models, in <store root>/.checkpoints/<key>/, is never listed as a model, and is removed
once the run's model is saved. Written with the store's rename-into-place scheme: a kill
during a write leaves the previous checkpoint whole.
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ae.storage.atomic import remove_quietly
from ae.storage.store import ModelStore, fsync_path, write_json_atomically

INDEX_FILE = "checkpoint.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    history: dict  # the job's fields at that moment: epochs_done, losses, ...


def checkpoint_dir(store: ModelStore, key: str) -> Path:
    return store.root / ".checkpoints" / key


def save_checkpoint(store: ModelStore, key: str, weights, optimizer, history: dict) -> None:
    """Raises OSError if the disk refuses; the caller decides whether that matters."""
    folder = checkpoint_dir(store, key)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"state-{uuid.uuid4().hex[:12]}.npz"
    arrays = {f"w{i}": np.asarray(a) for i, a in enumerate(weights)}
    arrays.update({f"o{i}": np.asarray(a) for i, a in enumerate(optimizer)})
    try:
        with open(folder / name, "wb") as handle:
            np.savez(handle, **arrays)
        fsync_path(folder / name)
        index = {"state_file": name, "weights": len(weights), "optimizer": len(optimizer), "history": history}
        previous = _index(folder)
        write_json_atomically(folder / INDEX_FILE, index)
    except BaseException:  # a partial checkpoint must not hold a full disk until the next restart
        remove_quietly(folder / name)
        raise
    if previous and previous.get("state_file") != name:
        (folder / str(previous["state_file"])).unlink(missing_ok=True)


def _index(folder: Path) -> dict | None:
    try:
        index = json.loads((folder / INDEX_FILE).read_text())
        return index if isinstance(index, dict) else None
    except (OSError, ValueError):
        return None


def load_checkpoint(store: ModelStore, key: str) -> Checkpoint | None:
    """The last whole checkpoint of a run, or None if there is none or it is unreadable."""
    folder = checkpoint_dir(store, key)
    index = _index(folder)
    if index is None:
        return None
    try:
        name = str(index["state_file"])
        if "/" in name:
            return None
        with np.load(folder / name, allow_pickle=False) as archive:
            weights = [archive[f"w{i}"] for i in range(int(index["weights"]))]
            optimizer = [archive[f"o{i}"] for i in range(int(index["optimizer"]))]
        history = index["history"]
        if not isinstance(history, dict):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Checkpoint(weights, optimizer, history)


def checkpoint_epochs(store: ModelStore, key: str) -> float | None:
    """Epochs behind a run's checkpoint, read without loading its arrays."""
    index = _index(checkpoint_dir(store, key))
    try:
        return float(index["history"]["epochs_done"]) if index else None
    except (KeyError, TypeError, ValueError):
        return None


def delete_checkpoint(store: ModelStore, key: str) -> None:
    shutil.rmtree(checkpoint_dir(store, key), ignore_errors=True)


def clean_checkpoints(store: ModelStore) -> None:
    """Drop unreadable checkpoints and state files that no index names."""
    root = store.root / ".checkpoints"
    if not root.is_dir():
        return
    for folder in root.iterdir():
        index = _index(folder) if folder.is_dir() else None
        if index is None:
            shutil.rmtree(folder, ignore_errors=True) if folder.is_dir() else folder.unlink(missing_ok=True)
            continue
        for path in folder.iterdir():
            if path.name != INDEX_FILE and path.name != index.get("state_file"):
                path.unlink(missing_ok=True)


class CheckpointWriter:
    """Writes checkpoints on a thread of its own, so the training loop only pays for copying
    the arrays; if a write is still under way, only the newest pending checkpoint is kept."""

    def __init__(self, store: ModelStore):
        self.store = store
        self._pending: tuple | None = None
        self._busy = False
        self._condition = threading.Condition()
        threading.Thread(target=self._write_forever, name="ae-checkpoints", daemon=True).start()

    def submit(self, key: str, weights, optimizer, history: dict) -> None:
        with self._condition:
            self._pending = (key, weights, optimizer, history)
            self._condition.notify_all()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every submitted checkpoint is on disk (or failed)."""
        with self._condition:
            self._condition.wait_for(lambda: self._pending is None and not self._busy, timeout=timeout)

    def _write_forever(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None)
                (key, weights, optimizer, history), self._pending = self._pending, None
                self._busy = True
            try:
                save_checkpoint(self.store, key, weights, optimizer, history)
            except OSError as error:  # a full or read-only disk costs the checkpoint, not the run
                log.warning("Checkpoint of %s not written: %s", key, error)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()
