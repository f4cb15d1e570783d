"""A model's training history: one type for the training job, its snapshot and its saved record.

Adding a field means adding it here: the job keeps a `History`, the snapshot carries it to the
web process, the record and the checkpoint save `to_dict()` and read back `from_dict()`.
Epoch counts are fractional after a mid-epoch stop, and sums of fractions are not exact, so
"has the model reached N epochs" is asked through `reached`, never with a bare comparison.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

EPOCH_TOLERANCE = 1e-6


def reached(epochs: float, target: float) -> bool:
    """Whether `epochs` of training reach `target` (4.9999999 reaches 5)."""
    return epochs >= target - EPOCH_TOLERANCE


def same_epochs(first: float, second: float) -> bool:
    """Whether two epoch counts are the same number of epochs."""
    return reached(first, second) and reached(second, first)


def _number(value, name: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a number of at least {minimum:g}, not {value!r}")
    return float(value)


def _numbers(values, name: str, allow_nan: bool = False) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{name} must be a list of numbers, not {type(values).__name__}")
    result = []
    for value in values:
        if value is None and allow_nan:
            result.append(float("nan"))
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (not allow_nan and not math.isfinite(value)):
            raise ValueError(f"{name} must hold numbers only, not {value!r}")
        result.append(float(value))
    return tuple(result)


def _pairs(values, name: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(values, (list, tuple)) or any(not isinstance(pair, (list, tuple)) or len(pair) != 2 for pair in values):
        raise ValueError(f"{name} must be a list of [position, loss] pairs")
    return tuple(_numbers(pair, name, allow_nan=True) for pair in values)


@dataclass(frozen=True)
class History:
    """Epochs, losses and times behind a model. Immutable: a job replaces its history."""

    epochs_done: float = 0.0  # fractional after a mid-epoch stop
    epochs_total: float = 0.0  # what was asked for: config.epochs, plus any continuation
    train_loss: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()
    kl_loss: tuple[float, ...] = ()  # a variational model's beta x KL term per epoch (validation digits)
    step_losses: tuple[tuple[float, float], ...] = ()  # (epoch position, mean train loss of the last few steps)
    epoch_ends: tuple[float, ...] = ()  # epoch position at which each train_loss/val_loss entry ended
    epoch_seconds: tuple[float, ...] = ()  # wall time of each epoch, validation included
    samples_per_second: float | None = None
    training_seconds: float = 0.0

    @property
    def epoch(self) -> int:
        """Whole epochs trained."""
        return int(self.epochs_done + EPOCH_TOLERANCE)

    @property
    def last_planned_epoch(self) -> int:
        """The number of the last epoch asked for: 5.0000001 planned epochs end with epoch 5."""
        return math.ceil(self.epochs_total - EPOCH_TOLERANCE)

    @property
    def plan_done(self) -> bool:
        """The model has every epoch asked for."""
        return reached(self.epochs_done, self.epochs_total)

    def with_changes(self, **changes) -> "History":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready: tuples as lists (a record's and a checkpoint's form)."""
        values = asdict(self)
        values["step_losses"] = [list(pair) for pair in self.step_losses]
        return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}

    @classmethod
    def from_dict(cls, raw: dict) -> "History":
        """Read a record's or checkpoint's history, type-checked; fields older formats lack get
        defaults. Raises ValueError naming the first bad field."""
        if not isinstance(raw, dict):
            raise ValueError("the history is not a JSON object")
        train_loss = _numbers(raw.get("train_loss", []), "train_loss", allow_nan=True)
        epochs_done = _number(raw.get("epochs_done", 0), "epochs_done")
        rate = raw.get("samples_per_second")
        return cls(
            epochs_done=epochs_done,
            epochs_total=_number(raw.get("epochs_total", max(epochs_done, 1.0)), "epochs_total"),
            train_loss=train_loss,
            val_loss=_numbers(raw.get("val_loss", []), "val_loss", allow_nan=True),
            kl_loss=_numbers(raw.get("kl_loss", []), "kl_loss", allow_nan=True),
            step_losses=_pairs(raw.get("step_losses", []), "step_losses"),
            epoch_ends=_numbers(raw.get("epoch_ends") or [float(i) for i in range(1, len(train_loss) + 1)], "epoch_ends"),
            epoch_seconds=_numbers(raw.get("epoch_seconds", []), "epoch_seconds"),
            samples_per_second=None if rate is None else _number(rate, "samples_per_second"),
            training_seconds=_number(raw.get("training_seconds", 0.0), "training_seconds"),
        )


FIELD_NAMES = tuple(field.name for field in fields(History))
