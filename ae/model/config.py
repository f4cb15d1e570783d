"""One training run, as a frozen, hashable value: what the UI produces and the engine consumes."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace

from ae.model.architectures import ARCHITECTURES, MAX_CODE_SIZE, TrainingOptions
from ae.model.noise import NOISE_KINDS

MAX_TRAIN_SIZE = 60_000
MAX_EPOCHS = 200
MAX_BATCH_SIZE = 8_192
MAX_SPARSITY = 1.0
# Fields added after models were first saved: left out of the key while at their default, so
# every model saved before keeps its key (and its folder) and still loads.
LATER_FIELDS = {"noise_kind": "none", "noise_level": 0.0, "sparsity": 0.0, "beta": 1.0, "contractive": 0.0}
MAX_BETA = 100.0
MAX_CONTRACTIVE = 100.0


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
    noise_kind: str = "none"  # a denoising model learns noisy -> clean (ae.model.noise)
    noise_level: float = 0.0
    sparsity: float = 0.0  # L1 penalty on the code: a sparse model
    beta: float = 1.0  # weight of the KL term: variational models only
    contractive: float = 0.0  # weight of the encoder's squared Jacobian norm: a contractive model (dense only)

    def __post_init__(self) -> None:
        for problem in validation_errors(self).values():
            raise ValueError(problem)
        # 1 and 1.0 are equal configs, so they must share one key (the key hashes the JSON).
        for name in ("learning_rate", "noise_level", "sparsity", "beta", "contractive"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def key(self) -> str:
        """Stable short name for disk and caches: readable prefix plus a hash of every field
        (fields added later count only when set, so older models keep their keys)."""
        fields_in_key = {name: value for name, value in asdict(self).items()
                         if name not in LATER_FIELDS or value != LATER_FIELDS[name]}
        payload = json.dumps(fields_in_key, sort_keys=True)
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
        extras = "".join((
            f", denoising ({self.noise_kind.replace('_', ' and ')} noise {self.noise_level:g})" if self.denoising else "",
            f", sparse (L1 {self.sparsity:g})" if self.sparsity else "",
            f", contractive (λ {self.contractive:g})" if self.contractive else "",
            f", beta {self.beta:g}" if self.beta != 1.0 else "",
        ))
        return (
            f"{label}{extras}, code size {self.code_size}, {self.epochs} epoch(s), batch {self.batch_size}, "
            f"learning rate {self.learning_rate:g}, {self.train_size:,} training digits, seed {self.seed}"
        )

    @property
    def variants(self) -> str:
        """", denoising, sparse, contractive" as they apply: what a short model name leaves out."""
        return ((", denoising" if self.denoising else "") + (", sparse" if self.sparsity else "")
                + (", contractive" if self.contractive else ""))

    @property
    def denoising(self) -> bool:
        return self.noise_kind != "none" and self.noise_level > 0

    def training_options(self) -> TrainingOptions:
        return TrainingOptions(self.noise_kind, self.noise_level, self.sparsity, self.beta, self.contractive)


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
    errors.update(_option_errors(config))
    return errors


def _is_fraction(value, high: float = 1.0) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and 0 <= value <= high)


def _option_errors(config) -> dict[str, str]:
    """Noise, sparsity, beta and the contractive weight: each in range and where it applies, and
    noise kind and level only together."""
    errors = {}
    kind = getattr(config, "noise_kind", "none")
    level = getattr(config, "noise_level", 0.0)
    sparsity = getattr(config, "sparsity", 0.0)
    if kind not in NOISE_KINDS:
        errors["noise_kind"] = f"Unknown noise kind {kind!r}; choose one of: {', '.join(NOISE_KINDS)}."
    if not _is_fraction(level):
        errors["noise_level"] = f"Noise level must be a number from 0 to 1; {_got(level)}."
    elif kind in NOISE_KINDS and kind != "none" and level == 0:
        errors["noise_level"] = "A denoising model needs a noise level above 0 (try 0.3), or choose no noise."
    elif kind == "none" and level > 0:
        errors["noise_level"] = "A noise level needs a noise kind: choose one, or set the level to 0."
    beta = getattr(config, "beta", 1.0)
    variational = getattr(ARCHITECTURES.get(getattr(config, "architecture", None)), "variational", False)
    if not _is_fraction(beta, MAX_BETA) or beta == 0:
        errors["beta"] = f"Beta must be a number above 0 and at most {MAX_BETA:g} (1 is the standard VAE); {_got(beta)}."
    elif beta != 1.0 and not variational:
        errors["beta"] = "Beta weighs the KL term of a variational model only: choose Variational (VAE), or set beta to 1."
    if not _is_fraction(sparsity, MAX_SPARSITY):
        errors["sparsity"] = f"Sparsity (L1) must be a number from 0 to {MAX_SPARSITY:g} (try 0.001); {_got(sparsity)}."
    contractive = getattr(config, "contractive", 0.0)
    spec = ARCHITECTURES.get(getattr(config, "architecture", None))
    if not _is_fraction(contractive, MAX_CONTRACTIVE):
        errors["contractive"] = (f"The contractive weight must be a number from 0 to {MAX_CONTRACTIVE:g} (try 0.1); "
                                 f"{_got(contractive)}.")
    elif contractive > 0 and spec is not None and not spec.contractive:
        dense = " or ".join(f"{s.label}" for s in ARCHITECTURES.values() if s.contractive)
        errors["contractive"] = (f"The contractive penalty is for the dense autoencoders ({dense}), not {spec.label}: "
                                 "choose a dense one, or set the contractive weight to off.")
    return errors
