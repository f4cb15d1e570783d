"""Trained models on disk: one folder per run, each save atomic, read back after a restart.

Layout: <cache>/runs/<dataset fingerprint>/<config key>/{record.json, autoencoder-<id>.weights.h5}, and
beside them what is derived from those weights: replay.npz, digit_reader.npz (keyed to the record's
saved_at, `ae.analysis.your_digit`) and maps/. Only weights are stored; the architecture comes from our own registry on load, so no
user-supplied Keras file is ever deserialized.

Why a save can never lose an entry: new weights go into a file of a new name beside the old
ones, then `record.json` (which names its weights file, size and checksum) is replaced in one
`os.replace`. A crash at any moment leaves either the old record with its old weights or the
new record with its new weights. `clean_leftovers()` (run when the training process starts)
removes what a crash left behind. Records are validated in one place, `validate_record`, so
no page ever reads an unchecked value.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ae.model.config import TrainingConfig
from ae.model.data import Dataset
from ae.analysis.metrics import ErrorSummary
from ae.model.history import FIELD_NAMES as HISTORY_FIELDS
from ae.model.history import History
from ae.runtime import default_cache_dir
from ae.storage.atomic import remove_quietly

RECORD_FILE = "record.json"
LEGACY_WEIGHTS_FILE = "autoencoder.weights.h5"  # entries written before weights files had ids
WEIGHTS_SUFFIX = ".weights.h5"
FORMAT_VERSION = 2
log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """A stored entry cannot be used or written; the message says which and why in one sentence."""


@dataclass(frozen=True)
class StoreProblem:
    """A saved entry that cannot be used, with its config when the record was readable."""

    key: str
    message: str
    config: TrainingConfig | None = None


def dataset_fingerprint(dataset: Dataset) -> str:
    """Separates models trained on different data files (MNIST vs Fashion-MNIST)."""
    return f"{dataset.path.stem}-{len(dataset.x_train)}-{len(dataset.x_test)}-{int(dataset.x_train[:100].sum())}"


def disk_problem(error: OSError, folder: Path) -> str:
    """One sentence for a failed write, instead of h5py's or the OS's multi-line text."""
    if error.errno:
        reason = os.strerror(error.errno)
    else:  # h5py folds the OS's reason into a long multi-line message
        text = str(error)
        reason = next((known for known in ("Read-only file system", "No space left on device", "Permission denied")
                       if known in text), text.splitlines()[0][:120] if text else type(error).__name__)
    return f"the model cache {folder} cannot be written ({reason})"


def fsync_path(path: Path) -> None:
    """Flush a file or folder to disk, so a saved model survives a power cut, not only a crash."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomically(path: Path, payload: dict) -> None:
    """Write beside `path`, flush, then rename over it: readers see the old or the new file."""
    temporary = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(temporary, "w") as handle:
            handle.write(json.dumps(payload, indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_path(path.parent)


def weights_only(config: TrainingConfig, models):
    """The autoencoder's weights in a fresh, uncompiled copy: a compiled model's file would
    carry the optimizer's state too (three times the weights with Adam), which only a
    checkpoint needs."""
    from ae.model.architectures import build_models

    if getattr(models.autoencoder, "optimizer", None) is None:
        return models.autoencoder
    plain = build_models(config.architecture, config.code_size, config.training_options())
    plain.autoencoder.set_weights(models.autoencoder.get_weights())
    return plain.autoencoder


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- record validation: the one place that decides what a readable record is ----------
def validate_record(raw: dict) -> dict:
    """A record's fields, type-checked, with defaults for fields older formats lack: the
    training history as one `History` under "history", and the outcome beside it.

    Raises ValueError naming the first bad field. `config` must already be a TrainingConfig.
    """
    if not isinstance(raw, dict):
        raise ValueError("the record is not a JSON object")
    history = History.from_dict(raw)
    metrics = raw.get("test_metrics")
    try:
        test_metrics = ErrorSummary.from_dict(metrics) if metrics is not None else None
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"test_metrics is damaged ({type(error).__name__}: {error})") from None
    if test_metrics is not None and not all(math.isfinite(v) for v in (test_metrics.bce, test_metrics.mse)):
        raise ValueError("test_metrics must hold finite numbers")
    stopped = raw.get("stopped_early", False)
    if not isinstance(stopped, bool):
        raise ValueError(f"stopped_early must be true or false, not {stopped!r}")
    saved_at = raw.get("saved_at")
    if isinstance(saved_at, bool) or not isinstance(saved_at, (int, float)) or not math.isfinite(saved_at) or saved_at < 0:
        raise ValueError(f"saved_at must be a number of at least 0, not {saved_at!r}")
    others = {name: value for name, value in raw.items() if name not in HISTORY_FIELDS}
    return {**others, "history": history, "stopped_early": stopped, "test_metrics": test_metrics,
            "saved_at": float(saved_at)}


@dataclass
class ModelStore:
    root: Path
    problems: list[StoreProblem] = field(default_factory=list)

    @classmethod
    def for_dataset(cls, dataset: Dataset, cache_dir: Path | None = None) -> "ModelStore":
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return cls(base / "runs" / dataset_fingerprint(dataset))

    def entry_dir(self, key: str) -> Path:
        return self.root / key

    # ---- writing (the training process only) ------------------------------------------
    def writable_problem(self) -> str | None:
        """None if models can be saved here, else a sentence saying why they cannot."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{uuid.uuid4().hex[:8]}"
            try:
                probe.write_bytes(b"0" * 4096)
            finally:
                remove_quietly(probe)  # a failed check leaves no probe behind
        except OSError as error:
            return disk_problem(error, self.root)
        return None

    def save(self, config: TrainingConfig, models, record: dict) -> None:
        """Save weights and record so that a crash at any moment keeps the old or the new entry.

        Raises StoreError with one sentence if the disk refuses (read-only, full).
        """
        entry = self.entry_dir(config.key)
        weights_name = f"autoencoder-{uuid.uuid4().hex[:12]}{WEIGHTS_SUFFIX}"
        full_record = {"format": FORMAT_VERSION, "config": config.to_dict(), **record}
        json.dumps(full_record)  # a value JSON cannot hold fails here, before the disk is touched
        weights = entry / weights_name
        try:
            entry.mkdir(parents=True, exist_ok=True)
            weights_only(config, models).save_weights(weights)
            fsync_path(weights)
            full_record.update(weights_file=weights_name, weights_bytes=weights.stat().st_size,
                               weights_sha256=file_sha256(weights))
            write_json_atomically(entry / RECORD_FILE, full_record)
        except OSError as error:
            remove_quietly(weights)
            if entry.is_dir() and not (entry / RECORD_FILE).exists():  # a first save: no folder left to read as damaged
                shutil.rmtree(entry, ignore_errors=True)
            raise StoreError(f"The model was not saved: {disk_problem(error, self.root)}.") from None
        for stale in entry.glob(f"*{WEIGHTS_SUFFIX}"):  # the replaced weights, and any a crash left
            if stale.name != weights_name:
                stale.unlink(missing_ok=True)

    def clean_leftovers(self) -> list[str]:
        """Remove what an interrupted save left; returns what was done, for the log.

        Also repairs the older layout's one unsafe moment: an entry renamed to `.old-*`
        whose replacement never landed is renamed back.
        """
        done: list[str] = []
        if not self.root.is_dir():
            return done
        for path in sorted(self.root.iterdir()):
            name = path.name
            if name.startswith(".old-") and path.is_dir():
                key = name[len(".old-"):].rsplit("-", 1)[0]
                if not self.entry_dir(key).exists() and (path / RECORD_FILE).exists():
                    os.replace(path, self.entry_dir(key))
                    done.append(f"restored {key} from an interrupted save")
                else:
                    shutil.rmtree(path, ignore_errors=True)
                    done.append(f"removed {name}")
            elif name.startswith((".tmp-", ".probe-")):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                done.append(f"removed {name}")
            elif path.is_dir() and not name.startswith("."):
                done.extend(self._clean_entry(path))
        return done

    @staticmethod
    def _leftovers(entry: Path) -> list[Path]:
        """Weights, and a record, replay or map cut short by a crash; without a record, maps too
        (of a model kept in memory only)."""
        return [p for p in entry.iterdir()
                if p.name.endswith(WEIGHTS_SUFFIX) or f"{RECORD_FILE}.tmp-" in p.name or p.name.startswith(".tmp-")
                or (p.name == "maps" and p.is_dir() and not (entry / RECORD_FILE).exists())]

    def _only_leftovers(self, entry: Path) -> bool:
        """No record, and nothing but leftovers: not a damaged model, just what a failed first save left."""
        return not (entry / RECORD_FILE).exists() and len(self._leftovers(entry)) == len(list(entry.iterdir()))

    def _clean_entry(self, entry: Path) -> list[str]:
        ours = self._leftovers(entry)
        if not (entry / RECORD_FILE).exists():
            if self._only_leftovers(entry):  # only a first save's leftovers: drop the folder
                shutil.rmtree(entry, ignore_errors=True)
                return [f"removed the unfinished first save of {entry.name}"]
            return []
        try:
            keep = self._weights_file(entry).name
        except StoreError:
            return []
        removed = [p for p in ours if p.name != keep]
        for path in removed:
            path.unlink(missing_ok=True)
        for partial in (entry / "maps").glob(".tmp-*") if (entry / "maps").is_dir() else []:
            remove_quietly(partial)  # a map write cut short by a crash
        return [f"removed {len(removed)} leftover file(s) of {entry.name}"] if removed else []

    def delete(self, key: str) -> None:
        shutil.rmtree(self.entry_dir(key), ignore_errors=True)

    # ---- reading ------------------------------------------------------------------------
    def records(self) -> list[dict]:
        """Every usable record, oldest first. Damaged entries are skipped and noted in `problems`."""
        self.problems = []
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir() or self._only_leftovers(entry):
                continue
            try:
                found.append(self.read_record(entry))
            except StoreError as problem:
                self.problems.append(StoreProblem(entry.name, str(problem), getattr(problem, "config", None)))
                log.warning("%s", problem)
        return sorted(found, key=lambda record: record["saved_at"])

    def read_record(self, entry: Path) -> dict:
        """One entry's validated record; raises StoreError (with `.config` if it was readable)."""
        config = None
        try:
            raw = json.loads((entry / RECORD_FILE).read_text())
            config = TrainingConfig.from_dict(raw["config"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StoreError(f"Skipped saved model {entry.name}: its record is unreadable ({error}).") from None
        if config.key != entry.name:
            raise StoreError(f"Skipped saved model {entry.name}: its record belongs to {config.key}.")
        try:
            record = validate_record(raw)
        except ValueError as error:
            raise self._damaged(entry, config, f"its record is damaged ({error})") from None
        weights = self._weights_file(entry, raw)
        expected = raw.get("weights_bytes")
        if not weights.is_file() or weights.stat().st_size == 0:
            raise self._damaged(entry, config, "its weights file is missing or empty")
        if isinstance(expected, int) and weights.stat().st_size != expected:
            raise self._damaged(entry, config, f"its weights file is truncated or altered "
                                               f"({weights.stat().st_size:,} bytes, expected {expected:,})")
        record["config"] = config
        return record

    @staticmethod
    def _damaged(entry: Path, config: TrainingConfig, reason: str) -> StoreError:
        error = StoreError(f"Saved model {entry.name} is damaged: {reason}.")
        error.config = config
        return error

    def _weights_file(self, entry: Path, raw: dict | None = None) -> Path:
        if raw is None:
            try:
                raw = json.loads((entry / RECORD_FILE).read_text())
            except (OSError, ValueError) as error:
                raise StoreError(f"Saved model {entry.name}: its record is unreadable ({error}).") from None
        name = raw.get("weights_file", LEGACY_WEIGHTS_FILE) if isinstance(raw, dict) else LEGACY_WEIGHTS_FILE
        if not isinstance(name, str) or "/" in name or not name.endswith(WEIGHTS_SUFFIX):
            name = LEGACY_WEIGHTS_FILE
        return entry / name

    def weights_path(self, key: str) -> Path:
        return self._weights_file(self.entry_dir(key))

    def load_models(self, config: TrainingConfig):
        """Build the architecture from the registry and load the stored weights into it."""
        from ae.model.architectures import build_models

        entry = self.entry_dir(config.key)
        if not entry.is_dir():
            raise StoreError(f"Saved model {config.key} is no longer on the disk (its folder was deleted); "
                             "train it again.")
        try:
            raw = json.loads((entry / RECORD_FILE).read_text())
        except (OSError, ValueError) as error:
            raise StoreError(f"Saved model {config.key} cannot be loaded (its record is unreadable: {error}).") from None
        weights = self._weights_file(entry, raw)
        checksum = raw.get("weights_sha256")
        try:
            if checksum and file_sha256(weights) != checksum:
                raise ValueError("the weights file does not match its checksum (truncated or altered)")
            models = build_models(config.architecture, config.code_size, config.training_options())
            models.autoencoder.load_weights(weights)
        except Exception as error:  # h5py and Keras raise many kinds for a bad file
            raise StoreError(
                f"Saved model {config.key} cannot be loaded ({type(error).__name__}: {error}); "
                "delete it or train it again."
            ) from None
        return models
