"""The lecturer's pinned models: a small JSON list beside the models, written by the training
service only (its one writer), so it survives restarts and every web process sees the same
pins through the snapshots. A damaged file means no pins, with a warning, never a crash."""
from __future__ import annotations

import json
import logging
import threading

from ae.storage.store import ModelStore, StoreError, disk_problem, write_json_atomically

log = logging.getLogger(__name__)
PINS_FILE = ".pins.json"  # a dot-name: the store's entry listing skips it


class Pins:
    def __init__(self, store: ModelStore):
        self._path = store.root / PINS_FILE
        self._root = store.root
        self._lock = threading.Lock()
        self._keys = self._read()

    def _read(self) -> set[str]:
        try:
            keys = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as error:
            log.warning("The pinned models' list %s could not be read (%s); nothing is pinned.", self._path, error)
            return set()
        return {key for key in keys if isinstance(key, str)} if isinstance(keys, list) else set()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._keys

    def keys(self) -> set[str]:
        with self._lock:
            return set(self._keys)

    def set(self, key: str, pinned: bool) -> None:
        """Pin or unpin `key`; StoreError in words if the disk refuses (nothing changes then)."""
        with self._lock:
            keys = self._keys | {key} if pinned else self._keys - {key}
            try:
                self._root.mkdir(parents=True, exist_ok=True)
                write_json_atomically(self._path, sorted(keys))
            except OSError as error:
                raise StoreError(f"The pin was not saved: {disk_problem(error, self._root)}.") from None
            self._keys = keys
