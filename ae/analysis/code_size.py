"""Code-size sweep: one ordinary training job per code size, and the rate-distortion table.

A sweep is only bookkeeping over the JobManager: each code size is a normal job (queued,
live, stoppable), and a size whose model is already trained is reused, not retrained.
The table is built from the saved models, so results survive a restart; PCA's error with
the same number of components is computed on the spot for each row.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ae.model.config import TrainingConfig
from ae.analysis.metrics import evaluate_pca

DEFAULT_CODE_SIZES = (2, 4, 8, 16, 32, 49, 64, 128)
DEFAULT_SWEEP_EPOCHS = 10  # the dense model needs 4-8 epochs to beat PCA at code sizes 4 to 128 (below)
# First epoch at which the model's test error is below PCA's with as many components, measured by
# `python -m ae.bench --defaults` on the full MNIST training set with every other setting at its
# default (batch 256, learning rate 0.001, seed 0); None: not within MEASURED_WITHIN epochs.
MEASURED_WITHIN = {"dense": 20, "conv": 10}
EPOCHS_TO_BEAT_PCA: dict[str, dict[tuple[str, int], int | None]] = {
    "bce": {("dense", 2): None, ("dense", 4): 8, ("dense", 8): 4, ("dense", 16): 5, ("dense", 32): 5, ("dense", 49): 5,
            ("dense", 64): 5, ("dense", 128): 5, ("conv", 8): 2, ("conv", 32): 2},
    "mse": {("dense", 2): None, ("dense", 4): 17, ("dense", 16): 6, ("dense", 49): 6, ("dense", 64): 6, ("dense", 128): 8},
}


def sweep_configs(base: TrainingConfig, code_sizes, architectures=None) -> list[TrainingConfig]:
    """One config per distinct code size (and architecture, when several are compared),
    smallest size first; everything else as in `base`."""
    sizes = sorted({int(size) for size in code_sizes})
    if not sizes:
        raise ValueError("Choose at least one code size for the sweep.")
    names = list(dict.fromkeys(architectures or [base.architecture]))
    return [base.with_changes(code_size=size, architecture=name) for size in sizes for name in names]


def same_run_except_code_size(config: TrainingConfig, base: TrainingConfig) -> bool:
    return config.with_changes(code_size=base.code_size) == base


@dataclass(frozen=True)
class SweepRow:
    """One code size's job as the sweep sees it."""

    code_size: int
    architecture: str
    key: str
    state: str  # a JobState value, or "not started" when the job is unknown (cancelled)
    progress: float
    epochs_done: float
    queue_position: int | None
    has_model: bool
    starts_at: float | None = None  # a queued job's expected start, from runs measured on this server


class Sweep:
    """The jobs of one sweep, in code-size order."""

    def __init__(self, manager, configs: list[TrainingConfig]):
        self.manager = manager
        self.configs = configs

    @classmethod
    def start(cls, manager, base: TrainingConfig, code_sizes, session: str | None = None,
              architectures=None, lecturer: bool | None = None) -> "Sweep":
        """Request every code size's job (reusing trained ones); they queue smallest first.
        `session` asked for them: other sessions cannot stop them (see JobManager). A sweep
        counts as its jobs against a student's cap: one that does not fit is refused whole,
        in words (ValueError), before any job is queued."""
        configs = sweep_configs(base, code_sizes, architectures)
        new_runs = sum(1 for config in configs if cls._needs_a_run(manager, config))
        room = manager.room_left(session, lecturer) if new_runs else None
        if room is not None and room.jobs is not None and new_runs > room.jobs:
            have = room.cap - room.jobs
            raise ValueError(
                f"This sweep would queue {new_runs} models, but a student may have at most {room.cap} queued or "
                f"training at once and you have {have} already ({room.ahead} job{'s' if room.ahead != 1 else ''} "
                f"ahead of your next one in the queue). Choose at most {room.jobs} new size"
                f"{'s' if room.jobs != 1 else ''}, or wait for yours to finish.")
        for config in configs:
            manager.request(config, session=session, lecturer=lecturer)
        return cls(manager, configs)

    @staticmethod
    def _needs_a_run(manager, config: TrainingConfig) -> bool:
        """Whether requesting `config` queues a new run (not one saved or under way already)."""
        job = manager.get(config.key)
        if job is None:
            return True
        snapshot = job.snapshot()
        return snapshot.state.value == "failed" or not (snapshot.has_model or snapshot.is_active)

    def jobs(self) -> list:
        """The job of each config, or None where it was cancelled before it trained."""
        return [self.manager.get(config.key) for config in self.configs]

    def rows(self) -> list[SweepRow]:
        rows = []
        for config, job in zip(self.configs, self.jobs()):
            if job is None:
                rows.append(SweepRow(config.code_size, config.architecture, config.key, "not started", 0.0, 0, None, False))
                continue
            snapshot = job.snapshot()
            rows.append(SweepRow(
                config.code_size, config.architecture, config.key, snapshot.state.value, snapshot.progress,
                snapshot.history.epochs_done, snapshot.queue_position, snapshot.has_model, snapshot.starts_at,
            ))
        return rows

    @property
    def active(self) -> bool:
        return any(job is not None and job.snapshot().is_active for job in self.jobs())

    def stop(self, session: str | None = None, lecturer: bool | None = None) -> None:
        """Stop the running job and cancel the queued ones; trained sizes keep their models.
        A size another session asked for as well goes on for them."""
        for job in reversed(self.jobs()):  # cancel the queue first so nothing new starts
            if job is not None:
                job.stop(session, lecturer)


@dataclass(frozen=True)
class RatePoint:
    """Test error of one saved autoencoder and of PCA with as many components."""

    code_size: int
    key: str
    epochs_done: float
    stopped_early: bool
    autoencoder_bce: float
    autoencoder_mse: float
    pca_bce: float
    pca_mse: float

    def error(self, model: str, metric: str) -> float:
        return getattr(self, f"{model}_{metric}")


def rate_distortion(manager, base: TrainingConfig) -> list[RatePoint]:
    """Every saved model that matches `base` in all but code size, smallest code first."""
    points = []
    for job in manager.trained_jobs():
        snapshot = job.snapshot()
        if not same_run_except_code_size(snapshot.config, base) or snapshot.test_metrics is None:
            continue
        pca = evaluate_pca(manager.dataset, snapshot.config.code_size)
        points.append(RatePoint(
            snapshot.config.code_size, job.key, snapshot.history.epochs_done, snapshot.state.value == "stopped",
            snapshot.test_metrics.bce, snapshot.test_metrics.mse, pca.bce, pca.mse,
        ))
    return sorted(points, key=lambda point: point.code_size)


def rate_distortion_by_architecture(manager, base: TrainingConfig, architectures) -> dict[str, list[RatePoint]]:
    """The rate-distortion points of each architecture (settings otherwise as in `base`)."""
    return {name: rate_distortion(manager, base.with_changes(architecture=name)) for name in dict.fromkeys(architectures)}


def architectures_sentence(curves: dict[str, list[RatePoint]], metric: str) -> str:
    """Which architecture reconstructs best at each code size trained by two or more, in words."""
    from ae.model.architectures import ARCHITECTURES

    errors: dict[int, dict[str, float]] = {}
    for name, points in curves.items():
        for point in points:
            errors.setdefault(point.code_size, {})[name] = point.error("autoencoder", metric)
    shared = {size: by_name for size, by_name in sorted(errors.items()) if len(by_name) > 1}
    if not shared:
        return ""
    winners: dict[str, list[int]] = {}
    for size, by_name in shared.items():
        winners.setdefault(min(by_name, key=by_name.get), []).append(size)
    parts = [f"{ARCHITECTURES[name].label} at code size {_list(sizes)}" for name, sizes in winners.items()]
    return f"Lowest test {metric.upper()} among the architectures: " + "; ".join(parts) + "."


def _list(sizes: list[int]) -> str:
    sizes = [str(size) for size in sizes]
    return sizes[0] if len(sizes) == 1 else ", ".join(sizes[:-1]) + " and " + sizes[-1]


def comparison_sentence(points: list[RatePoint], metric: str) -> str:
    """Who wins where, in words, computed from the numbers."""
    if not points:
        return "No trained models for these settings yet."
    wins = [p.code_size for p in points if p.error("autoencoder", metric) < p.error("pca", metric)]
    losses = [p.code_size for p in points if p.code_size not in wins]
    name = metric.upper()
    if not losses:
        return f"The autoencoder reconstructs better than PCA ({name}) at every code size tried: {_list(wins)}."
    if not wins:
        return (f"PCA reconstructs better than the autoencoder ({name}) at every code size tried: {_list(losses)}. "
                "PCA is the best linear code, so this is a fair fight; try more epochs per size.")
    ratios = [p.error("autoencoder", metric) / p.error("pca", metric) for p in points]
    best = points[int(np.argmin(ratios))]
    return (f"The autoencoder beats PCA ({name}) at code size {_list(wins)}; PCA wins at {_list(losses)}. "
            f"The autoencoder's biggest lead is at code size {best.code_size}: "
            f"{best.error('autoencoder', metric):.4f} against {best.error('pca', metric):.4f}.")


def measured_settings(config: TrainingConfig) -> bool:
    """Whether `config` is trained as EPOCHS_TO_BEAT_PCA was measured (all but the architecture,
    code size, epochs and seed at their defaults, on the full training set)."""
    default = TrainingConfig()
    return config.with_changes(architecture=default.architecture, code_size=default.code_size, epochs=default.epochs,
                               seed=default.seed) == default


def other_epochs(manager, base: TrainingConfig) -> list[RatePoint]:
    """The saved models with `base`'s settings but other epoch counts (any code size)."""
    return [point for epochs in sorted({job.snapshot().config.epochs for job in manager.trained_jobs()} - {base.epochs})
            for point in rate_distortion(manager, base.with_changes(epochs=epochs))]


def where_pca_still_wins(points: list[RatePoint], base: TrainingConfig, metric: str,
                         others: Sequence[RatePoint] | Callable[[], Sequence[RatePoint]] = ()) -> list[str]:
    """For each code size where PCA beats this curve: when the autoencoder overtakes it, from this
    server's own models with more epochs where one wins, else from the measured figures (only for
    the settings they were measured with). `others` may be a function (`other_epochs`, a scan of
    every saved model): it is called once, and only if PCA wins somewhere."""
    from ae.model.architectures import ARCHITECTURES

    label = ARCHITECTURES[base.architecture].label.split(" (")[0].lower()
    measured = EPOCHS_TO_BEAT_PCA.get(metric, {})
    sentences, found = [], None
    for point in points:
        if point.error("autoencoder", metric) < point.error("pca", metric):
            continue
        if found is None:
            found = list(others() if callable(others) else others)
        size, epochs = point.code_size, _epochs_text(point.epochs_done)
        winners = sorted((other for other in found if other.code_size == size and other.epochs_done > point.epochs_done
                          and other.error("autoencoder", metric) < other.error("pca", metric)),
                         key=lambda other: other.epochs_done)
        head = f"At {epochs} PCA still wins at code size {size}"
        if winners:
            won = winners[0]
            sentences.append(f"{head}; this server's {label} model trained {_epochs_text(won.epochs_done)} beats it there "
                             f"({won.error('autoencoder', metric):.4f} against {won.error('pca', metric):.4f}).")
        elif measured_settings(base) and (base.architecture, size) in measured:
            overtakes = measured[(base.architecture, size)]
            if overtakes is None:
                sentences.append(f"{head}; measured on the full training set, the {label} model did not overtake it "
                                 f"within {MEASURED_WITHIN[base.architecture]} epochs.")
            elif overtakes > point.epochs_done:
                sentences.append(f"{head}; measured on the full training set, the {label} model overtakes it after "
                                 f"{_epochs_text(overtakes)}.")
    return sentences


def _epochs_text(epochs: float) -> str:
    text = f"{epochs:.3g}"
    return f"{text} epoch" if text == "1" else f"{text} epochs"


def rate_distortion_csv(points: list[RatePoint]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["code_size", "architecture", "model_key", "epochs_done", "stopped_early",
                     "autoencoder_bce", "pca_bce", "autoencoder_mse", "pca_mse"])
    for p in points:
        writer.writerow([p.code_size, p.key.split("-c")[0], p.key, p.epochs_done, p.stopped_early,
                         f"{p.autoencoder_bce:.6g}", f"{p.pca_bce:.6g}", f"{p.autoencoder_mse:.6g}", f"{p.pca_mse:.6g}"])
    return buffer.getvalue()


def reconstruction_strip(manager, points: list[RatePoint], indices: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """For each code size: the autoencoder's and PCA's reconstructions of the same test digits."""
    from ae.analysis.metrics import fit_pca
    from ae.model.architectures import predict

    originals = manager.dataset.test_images[indices]
    rows = []
    for point in points:
        models = manager.get(point.key).models()
        autoencoder = predict(models.autoencoder, originals)[..., 0]
        pca = fit_pca(manager.dataset, point.code_size).reconstruct(originals)
        rows.append((point.code_size, autoencoder, pca))
    return rows
