"""Trained models on disk: one folder per run, written atomically, read back after a restart.

Layout: <cache>/runs/<dataset fingerprint>/<config key>/{record.json, autoencoder.weights.h5}.
Only weights are stored; the architecture comes from our own registry on load, so no
user-supplied Keras file is ever deserialized and a stale entry whose weights no longer fit
the architecture fails cleanly. A folder is written under a temporary name and renamed
into place, so a crash never leaves a half entry. A damaged entry is skipped with a warning.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ae.config import TrainingConfig
from ae.data import Dataset
from ae.models import AutoencoderModels, build_models
from ae.runtime import default_cache_dir

RECORD_FILE = "record.json"
WEIGHTS_FILE = "autoencoder.weights.h5"
FORMAT_VERSION = 1
log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """A stored entry cannot be used; the message says which and why."""


def dataset_fingerprint(dataset: Dataset) -> str:
    """Separates models trained on different data files (MNIST vs Fashion-MNIST)."""
    return f"{dataset.path.stem}-{len(dataset.x_train)}-{len(dataset.x_test)}-{int(dataset.x_train[:100].sum())}"


@dataclass
class ModelStore:
    root: Path
    problems: list[str] = field(default_factory=list)

    @classmethod
    def for_dataset(cls, dataset: Dataset, cache_dir: Path | None = None) -> "ModelStore":
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return cls(base / "runs" / dataset_fingerprint(dataset))

    def entry_dir(self, key: str) -> Path:
        return self.root / key

    def save(self, config: TrainingConfig, models: AutoencoderModels, record: dict) -> None:
        """Write weights and record under a temporary folder, then rename it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".tmp-{config.key}-{uuid.uuid4().hex[:8]}"
        temporary.mkdir()
        try:
            models.autoencoder.save_weights(temporary / WEIGHTS_FILE)
            full_record = {"format": FORMAT_VERSION, "config": config.to_dict(), **record}
            (temporary / RECORD_FILE).write_text(json.dumps(full_record, indent=1))
            final = self.entry_dir(config.key)
            if final.exists():
                old = self.root / f".old-{config.key}-{uuid.uuid4().hex[:8]}"
                os.replace(final, old)
                os.replace(temporary, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(temporary, final)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def records(self) -> list[dict]:
        """Every readable record, oldest first. Damaged entries are skipped and noted in `problems`."""
        self.problems = []
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                found.append(self._read_record(entry))
            except StoreError as problem:
                self.problems.append(str(problem))
                log.warning("%s", problem)
        return sorted(found, key=lambda record: record.get("saved_at", 0))

    def _read_record(self, entry: Path) -> dict:
        try:
            record = json.loads((entry / RECORD_FILE).read_text())
            config = TrainingConfig.from_dict(record["config"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StoreError(f"Skipped saved model {entry.name}: its record is unreadable ({error}).") from None
        saved_at = record.get("saved_at", 0)
        if isinstance(saved_at, bool) or not isinstance(saved_at, (int, float)):
            raise StoreError(f"Skipped saved model {entry.name}: its record has no valid saved_at time.")
        if config.key != entry.name:
            raise StoreError(f"Skipped saved model {entry.name}: its record belongs to {config.key}.")
        weights = entry / WEIGHTS_FILE
        if not weights.is_file() or weights.stat().st_size == 0:
            raise StoreError(f"Skipped saved model {entry.name}: its weights file is missing or empty.")
        record["config"] = config
        return record

    def load_models(self, config: TrainingConfig) -> AutoencoderModels:
        """Build the architecture from the registry and load the stored weights into it."""
        weights = self.entry_dir(config.key) / WEIGHTS_FILE
        models = build_models(config.architecture, config.code_size)
        try:
            models.autoencoder.load_weights(weights)
        except Exception as error:  # h5py and Keras raise many kinds for a bad file
            raise StoreError(
                f"Saved model {config.key} cannot be loaded ({type(error).__name__}: {error}); "
                "delete it or train it again."
            ) from None
        return models

    def delete(self, key: str) -> None:
        shutil.rmtree(self.entry_dir(key), ignore_errors=True)
