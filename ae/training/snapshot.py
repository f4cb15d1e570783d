"""What both sides of the training boundary agree on: job states and the snapshot of a job.

The training service (ae.training.trainer, run by ae.training.process) owns jobs and publishes a `JobSnapshot`
whenever one changes; the web process (ae.jobs.manager) only keeps the latest snapshot of each.
Snapshots are immutable, small and picklable, and carry a version number so a page can tell
whether anything changed since it last drew. No TensorFlow here.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace

import numpy as np

from ae.askers import Askers

from ae.model.config import TrainingConfig
from ae.analysis.metrics import ErrorSummary
from ae.model.history import History, reached

PANEL_SIZE = 16


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.STOPPING)


class Phase(str, enum.Enum):
    """What a running job is doing right now, for the progress line."""

    WAITING = "waiting"
    STARTING = "starting"  # loading the data, building or restoring the model
    COMPILING = "compiling"  # the first execution: XLA compiles the training step
    TRAINING = "training"
    EVALUATING = "evaluating"  # the test set, after the last step
    SAVING = "saving"
    DONE = "done"


def panel_indices(labels: np.ndarray, size: int = PANEL_SIZE) -> np.ndarray:
    """A fixed panel of test digits: the first of each class 0-9, then the next ones in order."""
    firsts = [int(np.flatnonzero(labels == digit)[0]) for digit in range(10) if (labels == digit).any()]
    taken = set(firsts)
    rest = [index for index in range(min(len(labels), size + len(firsts))) if index not in taken]
    return np.array((firsts + rest)[:size])


PANEL_NOISE_SEED = 2024  # the panel's noisy inputs: the same in the training process and on the page


def panel_inputs(test_images: np.ndarray, labels: np.ndarray, config: TrainingConfig) -> tuple[np.ndarray, np.ndarray]:
    """The panel's clean test digits, and what the model is shown: for a denoising model the
    same digits with its kind of noise (fixed seed), else the clean digits themselves."""
    from ae.model.noise import add_noise

    clean = test_images[panel_indices(labels)]
    shown = add_noise(clean, config.noise_kind, config.noise_level, PANEL_NOISE_SEED) if config.denoising else clean
    return clean, shown


def training_indices(config: TrainingConfig, available: int) -> np.ndarray | None:
    """Which training digits a config uses: all of them, or a seeded random subset."""
    if config.train_size >= available:
        return None
    return np.sort(np.random.default_rng(config.seed).permutation(available)[: config.train_size])


def continued_total(state: JobState, has_model: bool, resume_from: float | None, epochs_done: float, *,
                    extra_epochs: int | None = None, total_epochs: float | None = None) -> float:
    """The epochs a Continue (+`extra_epochs`) or a Resume (to `total_epochs`) plans in all, or
    ValueError saying why it may not: the one Continue check, asked by the web side before it
    sends the command and by the training process before it queues it."""
    if extra_epochs is not None and (not isinstance(extra_epochs, int) or isinstance(extra_epochs, bool) or extra_epochs < 1):
        raise ValueError(f"Extra epochs must be a whole number of at least 1; got {extra_epochs!r}.")
    if total_epochs is not None and (isinstance(total_epochs, bool) or not isinstance(total_epochs, (int, float))
                                     or not total_epochs > 0):
        raise ValueError(f"Resume needs a positive number of epochs; got {total_epochs!r}.")
    if state in ACTIVE_STATES:
        raise ValueError("This model is still training; stop it or wait before continuing.")
    if not has_model and resume_from is None:
        raise ValueError("This model has no trained epochs to continue from; train it first.")
    if extra_epochs is not None:
        return epochs_done + extra_epochs
    if reached(epochs_done, total_epochs):
        raise ValueError(f"This model already has {epochs_done:g} epochs; use Continue to train more.")
    return float(total_epochs)


@dataclass(frozen=True)
class JobSnapshot:
    """What a page shows about a job at one moment. Immutable: safe to read anywhere."""

    key: str
    config: TrainingConfig
    state: JobState
    history: History = History()  # epochs and losses so far, as saved with the model
    error: str | None = None
    step: int = 0  # steps done in the current epoch
    steps_per_epoch: int = 1
    eta_seconds: float | None = None
    panel_reconstructions: np.ndarray | None = None
    panel_epoch: float | None = None
    queue_position: int | None = None
    test_metrics: ErrorSummary | None = None
    saved_at: float | None = None
    version: int = 0  # grows with every published change
    panel_version: int = 0  # grows with every new panel of reconstructions
    phase: Phase = Phase.WAITING
    warning: str | None = None  # e.g. the model could not be written to disk and lives in memory only
    saved_to_disk: bool = True
    resume_from: float | None = None  # a checkpoint's epochs, when a failed run can resume
    askers: Askers | None = None  # who asked for the current run and is still here (ae.askers)
    where: str | None = None  # the slot or cluster node of its current or last run
    starts_at: float | None = None  # a queued job's expected start (seconds since the epoch), when measured
    pinned: bool = False  # the lecturer pinned it: nobody else changes or deletes it (ae.permissions)
    owners: frozenset = frozenset()  # sessions that asked for this model and are still here

    @property
    def epoch(self) -> int:
        """Whole epochs trained."""
        return self.history.epoch

    @property
    def position(self) -> float:
        """Epochs trained, counting the current epoch's steps while training."""
        running = self.state in (JobState.RUNNING, JobState.STOPPING)
        return self.history.epochs_done + (self.step / max(1, self.steps_per_epoch) if running else 0.0)

    @property
    def progress(self) -> float:
        """Fraction of the requested epochs done, 0..1."""
        return min(1.0, self.position / max(1e-9, self.history.epochs_total))

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def has_model(self) -> bool:
        """A trained model exists (on disk, or in memory when the disk refused) and pages can use it."""
        return self.saved_at is not None

    def with_changes(self, **changes) -> "JobSnapshot":
        return replace(self, **changes)
