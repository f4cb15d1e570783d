"""One training run, as a frozen, hashable value: what the UI produces and the engine consumes."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace

from ae.models import ARCHITECTURES, MAX_CODE_SIZE

MAX_TRAIN_SIZE = 60_000
MAX_EPOCHS = 200
MAX_BATCH_SIZE = 8_192


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides a trained model. Invalid values raise ValueError in words."""

    architecture: str = "dense"
    code_size: int = 49
    epochs: int = 5
    batch_size: int = 256
    learning_rate: float = 1e-3
    train_size: int = MAX_TRAIN_SIZE
    seed: int = 0

    def __post_init__(self) -> None:
        for problem in validation_errors(self).values():
            raise ValueError(problem)
        # 1 and 1.0 are equal configs, so they must share one key (the key hashes the JSON).
        object.__setattr__(self, "learning_rate", float(self.learning_rate))

    @property
    def key(self) -> str:
        """Stable short name for disk and caches: readable prefix plus a hash of every field."""
        payload = json.dumps(asdict(self), sort_keys=True)
        digest = hashlib.sha1(payload.encode()).hexdigest()[:8]
        return f"{self.architecture}-c{self.code_size}-e{self.epochs}-{digest}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        known = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})

    def with_changes(self, **changes) -> "TrainingConfig":
        return replace(self, **changes)

    def describe(self) -> str:
        label = ARCHITECTURES[self.architecture].label
        return (
            f"{label}, code size {self.code_size}, {self.epochs} epoch(s), batch {self.batch_size}, "
            f"learning rate {self.learning_rate:g}, {self.train_size:,} training digits, seed {self.seed}"
        )


def usable_training_digits(dataset) -> int:
    """How many training digits a config may ask for with this data file (a file may hold more)."""
    return min(len(dataset.x_train), MAX_TRAIN_SIZE)


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _got(value) -> str:
    return "the box is empty" if value is None or value == "" else f"got {value!r}"


def number_problem(name: str, value, low: int, high: int) -> str | None:
    """One sentence if `value` is not a whole number from low to high, else None."""
    if _is_whole(value) and low <= value <= high:
        return None
    return f"{name} must be a whole number from {low:,} to {high:,}; {_got(value)}."


def validation_errors(config) -> dict[str, str]:
    """Field name -> a sentence a user can act on. Works on any object with the fields,
    so a UI can show each message next to its control before building the config."""
    errors: dict[str, str] = {}
    if config.architecture not in ARCHITECTURES:
        errors["architecture"] = (
            f"Unknown architecture '{config.architecture}'; choose one of: {', '.join(ARCHITECTURES)}."
        )
    for field, name, low, high, why in (
        ("code_size", "Code size", 1, MAX_CODE_SIZE, " (the image has 784 pixels)"),
        ("epochs", "Epochs", 1, MAX_EPOCHS, ""),
        ("batch_size", "Batch size", 1, MAX_BATCH_SIZE, ""),
        ("train_size", "Training digits", 10, MAX_TRAIN_SIZE, ""),
        ("seed", "Seed", 0, 2**31 - 1, ""),
    ):
        problem = number_problem(name, getattr(config, field), low, high)
        if problem:
            errors[field] = problem[:-1] + why + "."
    rate = config.learning_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or not 0 < rate <= 1:
        errors["learning_rate"] = f"Learning rate must be a number above 0 and at most 1 (try 0.001); {_got(rate)}."
    return errors
