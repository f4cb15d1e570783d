"""Training jobs: one config trained with `model.fit` in a background thread.

Pages never train: they ask the process-wide `JobManager` for the job of a config and read
`job.snapshot()`, a consistent, immutable view, as often as they like. Asking twice for
the same config returns the same job, so a lecture hall of students shares one run. One
worker thread trains one job at a time; the others wait as `queued`. Seeding and every
other process-wide TensorFlow setting happen on that worker, inside its one serialized
section. Finished and stopped models are saved (ae.store) and come back after a restart.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

import keras

from ae.config import TrainingConfig
from ae.data import Dataset, load_dataset
from ae.metrics import ErrorSummary, evaluate_reconstructions
from ae.models import BUILD_LOCK, AutoencoderModels, build_models, predict
from ae.store import ModelStore, StoreError

log = logging.getLogger(__name__)

PANEL_SIZE = 16
VALIDATION_SIZE = 1_000  # small, because Keras finishes validation even after a stop
# Measured on 2 CPU cores (python -m ae.bench): XLA with several steps per execution is
# the fastest setting; callbacks then fire every STEPS_PER_EXECUTION steps.
JIT_COMPILE = True
STEPS_PER_EXECUTION = 16
PANEL_REFRESH_SECONDS = 1.0
MAX_STEP_LOSSES = 2_000


def pixel_binary_crossentropy(y_true, y_pred):
    """Keras's binary cross-entropy, averaged over each image's pixels, on flattened images.

    The same numbers as `loss="binary_crossentropy"` on (N, 28, 28, 1) tensors, but XLA on
    CPU handles a trailing axis of length 1 badly: flattening first makes an epoch ~15%
    faster (measured with `python -m ae.bench`).
    """
    pixels = int(np.prod(y_pred.shape[1:]))  # static under fit: (28, 28, 1) -> 784
    return keras.losses.binary_crossentropy(keras.ops.reshape(y_true, (-1, pixels)), keras.ops.reshape(y_pred, (-1, pixels)))


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.STOPPING)


def panel_indices(labels: np.ndarray, size: int = PANEL_SIZE) -> np.ndarray:
    """A fixed panel of test digits: the first of each class 0-9, then the next ones in order."""
    firsts = [int(np.flatnonzero(labels == digit)[0]) for digit in range(10) if (labels == digit).any()]
    taken = set(firsts)
    rest = [index for index in range(min(len(labels), size + len(firsts))) if index not in taken]
    return np.array((firsts + rest)[:size])


def training_indices(config: TrainingConfig, available: int) -> np.ndarray | None:
    """Which training digits a config uses: all of them, or a seeded random subset."""
    if config.train_size >= available:
        return None
    return np.sort(np.random.default_rng(config.seed).permutation(available)[: config.train_size])


@dataclass(frozen=True)
class JobSnapshot:
    """What a page shows about a job at one moment. Immutable: safe to read anywhere."""

    key: str
    config: TrainingConfig
    state: JobState
    error: str | None
    epochs_done: float  # epochs of training behind the model; fractional after a mid-epoch stop
    epochs_total: float  # what was asked for: config.epochs, plus any continuation
    step: int  # steps done in the current epoch
    steps_per_epoch: int
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    step_losses: tuple[tuple[float, float], ...]  # (epoch position, mean train loss of the last few steps)
    epoch_ends: tuple[float, ...]  # epoch position at which each train_loss/val_loss entry ended
    epoch_seconds: tuple[float, ...]  # wall time of each epoch, validation included
    samples_per_second: float | None
    eta_seconds: float | None
    panel_reconstructions: np.ndarray | None
    panel_epoch: float | None
    queue_position: int | None
    test_metrics: ErrorSummary | None
    training_seconds: float
    saved_at: float | None

    @property
    def epoch(self) -> int:
        """Whole epochs trained."""
        return int(self.epochs_done + 1e-9)

    @property
    def position(self) -> float:
        """Epochs trained, counting the current epoch's steps while training."""
        running = self.state in (JobState.RUNNING, JobState.STOPPING)
        return self.epochs_done + (self.step / max(1, self.steps_per_epoch) if running else 0.0)

    @property
    def progress(self) -> float:
        """Fraction of the requested epochs done, 0..1."""
        return min(1.0, self.position / max(1e-9, self.epochs_total))

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def has_model(self) -> bool:
        """A trained model is saved and can be used by the pages."""
        return self.saved_at is not None


@dataclass(eq=False)
class TrainingJob:
    """One config's model and its training. Mutable state lives behind `_lock`."""

    config: TrainingConfig
    manager: "JobManager"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop_event: threading.Event = field(default_factory=threading.Event)
    _models: AutoencoderModels | None = None  # the training copy, used by the worker only
    _compiled: bool = False
    _published: AutoencoderModels | None = None  # the pages' copy, loaded from the saved weights
    _published_at: float | None = None
    state: JobState = JobState.QUEUED
    error: str | None = None
    epochs_total: float = 0
    epochs_done: float = 0.0
    step: int = 0
    steps_per_epoch: int = 1
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    step_losses: list = field(default_factory=list)
    epoch_ends: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    samples_per_second: float | None = None
    eta_seconds: float | None = None
    panel_reconstructions: np.ndarray | None = None
    panel_epoch: float | None = None
    test_metrics: ErrorSummary | None = None
    training_seconds: float = 0.0
    saved_at: float | None = None
    _state_before_queue: JobState | None = None

    def __post_init__(self) -> None:
        self.epochs_total = self.epochs_total or self.config.epochs

    @property
    def key(self) -> str:
        return self.config.key

    # ---- reading -------------------------------------------------------------------
    def snapshot(self) -> JobSnapshot:
        position = self.manager.queue_position(self)
        with self._lock:
            return JobSnapshot(
                key=self.key,
                config=self.config,
                state=self.state,
                error=self.error,
                epochs_done=self.epochs_done,
                epochs_total=self.epochs_total,
                step=self.step,
                steps_per_epoch=self.steps_per_epoch,
                train_loss=tuple(self.train_loss),
                val_loss=tuple(self.val_loss),
                step_losses=tuple(self.step_losses),
                epoch_ends=tuple(self.epoch_ends),
                epoch_seconds=tuple(self.epoch_seconds),
                samples_per_second=self.samples_per_second,
                eta_seconds=self.eta_seconds,
                panel_reconstructions=self.panel_reconstructions,
                panel_epoch=self.panel_epoch,
                queue_position=position,
                test_metrics=self.test_metrics,
                training_seconds=self.training_seconds,
                saved_at=self.saved_at,
            )

    def models(self) -> AutoencoderModels:
        """The last saved model, for pages: loaded from disk once per save.

        Pages never touch the worker's training copy, so they can predict while it
        continues training. Raises StoreError if nothing is saved yet or the file is bad.
        """
        with self._lock:
            if self.saved_at is None:
                raise StoreError(f"Model {self.key} has no trained weights yet.")
            if self._published is None or self._published_at != self.saved_at:
                self._published = self.manager.store.load_models(self.config)
                self._published_at = self.saved_at
            return self._published

    # ---- control -------------------------------------------------------------------
    def stop(self) -> None:
        """Stop within one execution step; the model trained so far is kept and saved."""
        with self._lock:
            if self.state is JobState.RUNNING:
                self.state = JobState.STOPPING
                self._stop_event.set()
                return
            if self.state is not JobState.QUEUED:
                return
            previous, self._state_before_queue = self._state_before_queue, None
            self.state = previous or JobState.STOPPED
            self.epochs_total = self.epochs_done if previous else self.config.epochs
        self.manager._dequeue(self)

    def extend(self, extra_epochs: int) -> None:
        """Queue `extra_epochs` more epochs on the model trained so far."""
        if not isinstance(extra_epochs, int) or extra_epochs < 1:
            raise ValueError(f"Extra epochs must be a whole number of at least 1; got {extra_epochs!r}.")
        with self._lock:
            if self.state in ACTIVE_STATES:
                raise ValueError("This model is still training; stop it or wait before continuing.")
            if self.saved_at is None:
                raise ValueError("This model has no trained epochs to continue from; train it first.")
            self._state_before_queue = self.state
            self.epochs_total = self.epochs_done + extra_epochs
            self.state = JobState.QUEUED
            self.error = None
        self.manager._enqueue(self)

    def _requeue_after_failure(self) -> bool:
        """A failed job asked for again is tried again (from its last saved state)."""
        with self._lock:
            if self.state is not JobState.FAILED:
                return False
            self.state, self.error = JobState.QUEUED, None
            self.epochs_total = max(self.epochs_total, self.config.epochs)
            return True

    # ---- training (worker thread only) --------------------------------------------------
    def _set(self, **values) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)

    def _run(self, dataset: Dataset) -> None:
        with self._lock:
            if self.state is not JobState.QUEUED:
                return
            self.state = JobState.RUNNING
            self._stop_event.clear()
        started = time.perf_counter()
        try:
            self._train(dataset)
            stopped = self.epochs_done < self.epochs_total - 1e-6
            self._finish(dataset, JobState.STOPPED if stopped else JobState.FINISHED, time.perf_counter() - started)
        except Exception as error:  # the job reports every failure; the worker lives on
            log.exception("Training %s failed", self.key)
            self._set(
                state=JobState.FAILED,
                error=f"{type(error).__name__}: {error}",
                eta_seconds=None,
                _state_before_queue=None,
            )

    def _prepare_models(self) -> AutoencoderModels:
        if self._models is None and self.saved_at is not None:
            self._models = self.manager.store.load_models(self.config)
        if self._models is None:
            self._models = build_models(self.config.architecture, self.config.code_size)
        if not self._compiled:
            with BUILD_LOCK:
                self._models.autoencoder.compile(
                    optimizer=keras.optimizers.Adam(learning_rate=self.config.learning_rate),
                    loss=pixel_binary_crossentropy,
                    jit_compile=JIT_COMPILE,
                    steps_per_execution=STEPS_PER_EXECUTION,
                )
            self._compiled = True
        return self._models

    def _train(self, dataset: Dataset) -> None:
        config = self.config
        keras.utils.set_random_seed(config.seed + len(self.epoch_ends))  # process-global: worker thread only
        models = self._prepare_models()
        indices = training_indices(config, len(dataset.x_train))
        x_train = dataset.train_images if indices is None else dataset.train_images[indices]
        x_val = dataset.test_images[:VALIDATION_SIZE]
        panel = dataset.test_images[panel_indices(dataset.y_test)]
        self._set(steps_per_epoch=int(np.ceil(len(x_train) / config.batch_size)), step=0)
        # Whole epochs from where the model stands; a stopped epoch counted only its steps done.
        epochs_to_run = max(1, int(np.ceil(self.epochs_total - self.epochs_done - 1e-6)))
        models.autoencoder.fit(
            x_train,
            x_train,
            batch_size=config.batch_size,
            epochs=epochs_to_run,
            validation_data=(x_val, x_val),
            shuffle=True,
            verbose=0,
            callbacks=[_ProgressCallback(self, panel, config.batch_size)],
        )

    def _finish(self, dataset: Dataset, state: JobState, seconds: float) -> None:
        """Measure the test error and save the model, then publish the new state."""
        models = self._models
        reconstructions = predict(models.autoencoder, dataset.test_images)
        metrics = evaluate_reconstructions(dataset, reconstructions)
        saved_at = time.time()
        with self._lock:
            record = self._record(metrics, self.training_seconds + seconds, saved_at, state)
        self.manager.store.save(self.config, models, record)
        self._set(
            state=state,
            step=0,
            test_metrics=metrics,
            training_seconds=record["training_seconds"],
            saved_at=saved_at,
            eta_seconds=None,
            _state_before_queue=None,
        )
        self.manager._note_finished(self)

    def _record(self, metrics: ErrorSummary, training_seconds: float, saved_at: float, state: JobState) -> dict:
        return {
            "epochs_done": self.epochs_done,
            "epochs_total": self.epochs_total,
            "stopped_early": state is JobState.STOPPED,
            "train_loss": list(self.train_loss),
            "val_loss": list(self.val_loss),
            "step_losses": [list(pair) for pair in self.step_losses],
            "epoch_ends": list(self.epoch_ends),
            "epoch_seconds": list(self.epoch_seconds),
            "test_metrics": metrics.to_dict(),
            "samples_per_second": self.samples_per_second,
            "training_seconds": training_seconds,
            "saved_at": saved_at,
        }

    @classmethod
    def from_record(cls, record: dict, manager: "JobManager") -> "TrainingJob":
        """A finished or stopped job read back from disk; its model loads on first use."""
        metrics = record.get("test_metrics")
        epochs_done = float(record.get("epochs_done", 0))
        return cls(
            config=record["config"],
            manager=manager,
            state=JobState.STOPPED if record.get("stopped_early") else JobState.FINISHED,
            epochs_total=float(record.get("epochs_total", max(epochs_done, 1))),
            epochs_done=epochs_done,
            train_loss=[float(v) for v in record.get("train_loss", [])],
            val_loss=[float(v) for v in record.get("val_loss", [])],
            step_losses=[tuple(pair) for pair in record.get("step_losses", [])],
            epoch_ends=[float(v) for v in record.get("epoch_ends") or range(1, len(record.get("train_loss", [])) + 1)],
            epoch_seconds=[float(v) for v in record.get("epoch_seconds", [])],
            samples_per_second=record.get("samples_per_second"),
            test_metrics=ErrorSummary.from_dict(metrics) if metrics else None,
            training_seconds=float(record.get("training_seconds", 0.0)),
            saved_at=float(record.get("saved_at", 0.0)),
        )


class _ProgressCallback(keras.callbacks.Callback):
    """Copies Keras's progress into the job, refreshes the panel, and honours stop()."""

    def __init__(self, job: TrainingJob, panel: np.ndarray, batch_size: int):
        super().__init__()
        self.job = job
        self.panel = panel
        self.batch_size = batch_size
        self.start_position = job.epochs_done  # fit's epoch 0 starts here
        self.last_panel = 0.0
        self.rate_start: tuple[float, float] | None = None

    def _refresh_panel(self, position: float) -> None:
        reconstructions = predict(self.model, self.panel)[..., 0]
        self.job._set(panel_reconstructions=reconstructions, panel_epoch=position)
        self.last_panel = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()
        self.epoch_index = epoch
        self.previous = (0, 0.0)  # (step, running mean) at the last report of this epoch
        self.job._set(step=0)

    def on_train_batch_end(self, batch, logs=None):
        job = self.job
        steps = max(1, job.steps_per_epoch)
        step = min(int(batch) + 1, steps)  # the last execution may be padded
        now = time.perf_counter()
        position = self.start_position + self.epoch_index + step / steps
        # The first execution includes XLA compilation; measure speed from the end of it.
        rate = eta = None
        if self.rate_start is None:
            self.rate_start = (now, position)
        elif position > self.rate_start[1]:
            epochs_per_second = (position - self.rate_start[1]) / max(now - self.rate_start[0], 1e-9)
            rate = epochs_per_second * steps * self.batch_size
            eta = max(0.0, (job.epochs_total - position) / epochs_per_second)
        # Keras reports the epoch's running mean; the mean of just the last few steps
        # follows the loss without the jump a running mean makes when an epoch starts.
        running_mean = float((logs or {}).get("loss", float("nan")))
        previous_step, previous_mean = self.previous
        recent = (step * running_mean - previous_step * previous_mean) / max(1, step - previous_step)
        self.previous = (step, running_mean)
        with job._lock:
            job.step = step
            if rate is not None:
                job.samples_per_second, job.eta_seconds = rate, eta
            job.step_losses.append((round(position, 4), recent))
            if len(job.step_losses) > MAX_STEP_LOSSES:
                del job.step_losses[::2]
        if now - self.last_panel >= PANEL_REFRESH_SECONDS:
            self._refresh_panel(position)
        if job._stop_event.is_set():
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        """Also called for an epoch cut short by stop(): it then counts as the fraction done."""
        logs = logs or {}
        job = self.job
        with job._lock:
            fraction = job.step / max(1, job.steps_per_epoch)
            job.epochs_done = round(self.start_position + epoch + fraction, 4)
            job.step = 0  # the steps are in epochs_done now
            job.epoch_ends.append(job.epochs_done)
            job.train_loss.append(float(logs.get("loss", float("nan"))))
            job.val_loss.append(float(logs.get("val_loss", float("nan"))))
            job.epoch_seconds.append(time.perf_counter() - self.epoch_started)
            position = job.epochs_done
        self._refresh_panel(position)


class JobManager:
    """All jobs of one dataset in this process, and the single worker that trains them."""

    def __init__(self, dataset: Dataset, store: ModelStore):
        self.dataset = dataset
        self.store = store
        self._jobs: dict[str, TrainingJob] = {}
        self._queue: list[TrainingJob] = []
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._current: TrainingJob | None = None
        self._latest_key: str | None = None
        for record in store.records():
            try:
                job = TrainingJob.from_record(record, self)
            except (KeyError, TypeError, ValueError) as error:  # a damaged record must not stop the app
                problem = f"Skipped saved model {record['config'].key}: its record is damaged ({type(error).__name__}: {error})."
                store.problems.append(problem)
                log.warning("%s", problem)
                continue
            self._jobs[job.key] = job
            self._latest_key = job.key
        self._worker = threading.Thread(target=self._work, name="ae-training-worker", daemon=True)
        self._worker.start()

    # ---- public ------------------------------------------------------------------
    def request(self, config: TrainingConfig) -> TrainingJob:
        """The job for this config: the running or saved one if any, else a new queued one."""
        with self._lock:
            job = self._jobs.get(config.key)
            if job is None:
                job = self._jobs[config.key] = TrainingJob(config=config, manager=self)
                self._append_to_queue(job)
            elif job._requeue_after_failure():
                self._append_to_queue(job)
            return job

    def get(self, key: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(key)

    def jobs(self) -> list[TrainingJob]:
        with self._lock:
            return list(self._jobs.values())

    def trained_jobs(self) -> list[TrainingJob]:
        """Jobs with a saved model, newest first."""
        found = [job for job in self.jobs() if job.saved_at is not None]
        return sorted(found, key=lambda job: job.saved_at or 0, reverse=True)

    def latest(self) -> TrainingJob | None:
        """The model that most recently finished training: the app's current model."""
        with self._lock:
            return self._jobs.get(self._latest_key) if self._latest_key else None

    def running(self) -> TrainingJob | None:
        with self._lock:
            return self._current

    def queue_position(self, job: TrainingJob) -> int | None:
        """1 for the next job to run; None if not waiting."""
        with self._lock:
            return self._queue.index(job) + 1 if job in self._queue else None

    # ---- internals ---------------------------------------------------------------
    def _append_to_queue(self, job: TrainingJob) -> None:
        """Caller holds `_lock`."""
        if job not in self._queue:
            self._queue.append(job)
            self._wakeup.notify_all()

    def _enqueue(self, job: TrainingJob) -> None:
        with self._lock:
            self._append_to_queue(job)

    def _dequeue(self, job: TrainingJob) -> None:
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
            if job.saved_at is None and job.epochs_done == 0:
                self._jobs.pop(job.key, None)

    def _note_finished(self, job: TrainingJob) -> None:
        with self._lock:
            self._latest_key = job.key

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wakeup.wait()
                job = self._queue.pop(0)
                self._current = job
            try:
                job._run(self.dataset)
            finally:
                with self._lock:
                    self._current = None


_managers: dict[str, JobManager] = {}
_managers_lock = threading.Lock()


def get_manager(dataset: Dataset | None = None, cache_dir=None) -> JobManager:
    """The process-wide manager for a dataset (default: the configured data file)."""
    dataset = dataset or load_dataset()
    store = ModelStore.for_dataset(dataset, cache_dir)
    key = str(store.root)
    with _managers_lock:
        if key not in _managers:
            _managers[key] = JobManager(dataset, store)
        return _managers[key]
