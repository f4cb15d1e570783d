"""Training inside the training process: jobs, the queue, compiled training steps (`ae.training.fast_fit`), checkpoints and saving.

Only `ae.training.process` runs this module, in a process of its own, so training never shares an
interpreter (and its lock) with the web server's sessions. One `Trainer` owns every job of
one dataset and one model store: one thread trains one job at a time, the others wait as
`queued`. Whenever a job changes it is marked dirty, and the service publishes its snapshot.
Seeding and every other process-wide TensorFlow setting happen on the training thread.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from ae.training import fast_fit
from ae.storage.checkpoint import CheckpointWriter, checkpoint_epochs, clean_checkpoints, delete_checkpoint, load_checkpoint
from ae.model.config import TrainingConfig
from ae.model.data import Dataset
from ae.lru import LRU
from ae.model.history import EPOCH_TOLERANCE, History, reached
from ae.training.snapshot import (ACTIVE_STATES, JobSnapshot, JobState, Phase, continued_total, panel_inputs,
                                  training_indices)
from ae.analysis.metrics import ErrorSummary, evaluate_reconstructions
from ae.model.architectures import ARCHITECTURES, BUILD_LOCK, PIXELS, AutoencoderModels, build_models, predict
from ae.analysis.replay import REPLAY_STEPS, Frame, add_frame, load_replay, sample_indices, save_replay
from ae.storage.store import ModelStore, StoreError

log = logging.getLogger(__name__)

VALIDATION_SIZE = 1_000  # small, because Keras finishes validation even after a stop
# Measured on 2 CPU cores (python -m ae.bench): XLA-compiled steps, many per call, are the
# fastest setting (`ae.training.fast_fit`); callbacks then fire every STEPS_PER_CALL steps.
JIT_COMPILE = True
PANEL_REFRESH_SECONDS = 1.0
MAX_STEP_LOSSES = 1_000  # halved when full, so the loss chart's point count stays bounded
TRAINING_MODELS_KEPT = 2  # training copies (with optimizer state) kept for a quick Continue


def pixel_binary_crossentropy(y_true, y_pred):
    """Keras's binary cross-entropy, averaged over each image's pixels, on flattened images.

    The same numbers as `loss="binary_crossentropy"` on (N, 28, 28, 1) tensors, but XLA on
    CPU handles a trailing axis of length 1 badly: flattening first makes an epoch ~15%
    faster (measured with `python -m ae.bench`).
    """
    pixels = int(np.prod(y_pred.shape[1:]))  # static under fit: (28, 28, 1) -> 784
    return keras.losses.binary_crossentropy(keras.ops.reshape(y_true, (-1, pixels)), keras.ops.reshape(y_pred, (-1, pixels)))


@dataclass(eq=False)
class TrainingJob:
    """One config's model and its training. Mutable state lives behind `_lock`."""

    config: TrainingConfig
    trainer: "Trainer"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop_event: threading.Event = field(default_factory=threading.Event)
    state: JobState = JobState.QUEUED
    error: str | None = None
    phase: Phase = Phase.WAITING
    warning: str | None = None
    saved_to_disk: bool = True
    resume_from: float | None = None
    history: History = History()  # replaced, never changed in place: a snapshot shares it safely
    step: int = 0
    steps_per_epoch: int = 1
    eta_seconds: float | None = None
    panel_reconstructions: np.ndarray | None = None
    panel_epoch: float | None = None
    panel_version: int = 0
    test_metrics: ErrorSummary | None = None
    saved_at: float | None = None
    replay: list = field(default_factory=list)  # ae.analysis.replay frames, saved beside the model
    _state_before_queue: JobState | None = None

    def __post_init__(self) -> None:
        if not self.history.epochs_total:
            self.history = self.history.with_changes(epochs_total=self.config.epochs)

    @property
    def key(self) -> str:
        return self.config.key

    def snapshot(self, version: int, queue_position: int | None) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                key=self.key, config=self.config, state=self.state, history=self.history, error=self.error,
                step=self.step, steps_per_epoch=self.steps_per_epoch, eta_seconds=self.eta_seconds,
                panel_reconstructions=self.panel_reconstructions, panel_epoch=self.panel_epoch,
                queue_position=queue_position, test_metrics=self.test_metrics,
                saved_at=self.saved_at, version=version,
                panel_version=self.panel_version, phase=self.phase, warning=self.warning,
                saved_to_disk=self.saved_to_disk, resume_from=self.resume_from,
            )

    def _set(self, **values) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)
        self.trainer.mark_dirty(self)

    def update_history(self, **changes) -> None:
        """Caller holds `_lock`."""
        self.history = self.history.with_changes(**changes)

    # ---- progress (training thread only, from the progress callback) ------------------------
    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    def start_epoch(self) -> None:
        with self._lock:
            self.step = 0

    def record_steps(self, step: int, position: float, recent_loss: float, rate: float | None, eta: float | None) -> None:
        """Steps done in this epoch, the recent loss, and the speed once it is measured."""
        with self._lock:
            self.step, self.phase = step, Phase.TRAINING
            if rate is not None:
                self.eta_seconds = eta
            step_losses = self.history.step_losses + ((round(position, 4), recent_loss),)
            if len(step_losses) > MAX_STEP_LOSSES:  # halved: the chart's point count stays bounded
                step_losses = step_losses[1::2]
            self.update_history(step_losses=step_losses, samples_per_second=rate or self.history.samples_per_second)
        self.trainer.mark_dirty(self, urgent=False)

    def record_epoch(self, start_position: float, epoch: int, logs: dict, seconds: float, kl_term) -> float:
        """An epoch's end (a stopped one counts the fraction of its steps done); returns the
        model's epochs now."""
        with self._lock:
            position = round(start_position + epoch + self.step / max(1, self.steps_per_epoch), 4)
            self.step = 0  # the steps are in epochs_done now
            history = self.history
            self.update_history(
                epochs_done=position, epoch_ends=history.epoch_ends + (position,),
                train_loss=history.train_loss + (float(logs.get("loss", float("nan"))),),
                val_loss=history.val_loss + (float(logs.get("val_loss", float("nan"))),),
                epoch_seconds=history.epoch_seconds + (seconds,),
                kl_loss=history.kl_loss + ((kl_term(),) if kl_term is not None else ()))
        self.trainer.mark_dirty(self)  # an epoch's end goes out at once
        return position

    def show_panel(self, reconstructions: np.ndarray, position: float, urgent: bool) -> None:
        with self._lock:
            self.panel_reconstructions, self.panel_epoch = reconstructions, position
            self.panel_version += 1
        self.trainer.mark_dirty(self, urgent=urgent)

    def add_replay_frame(self, frame: Frame) -> None:
        with self._lock:
            add_frame(self.replay, frame)

    # ---- control (called on the service's command thread) ---------------------------------
    def stop(self) -> None:
        """Stop within one execution step; the model trained so far is kept and saved."""
        with self._lock:
            if self.state is JobState.RUNNING:
                self.state = JobState.STOPPING
                self._stop_event.set()
            elif self.state is JobState.QUEUED:
                previous, self._state_before_queue = self._state_before_queue, None
                self.state = previous or JobState.STOPPED
                self.phase = Phase.DONE
                self.update_history(epochs_total=self.history.epochs_done if previous else self.config.epochs)
            else:
                return
            dequeue = self.state is not JobState.STOPPING
        self.trainer.mark_dirty(self)
        if dequeue:
            self.trainer.dequeue(self)

    def extend(self, extra_epochs: int) -> None:
        """Queue `extra_epochs` more epochs on the model trained so far."""
        self._continue(extra_epochs=extra_epochs)

    def resume_to(self, target_epochs: float) -> None:
        """Queue training until the model has `target_epochs` in all (the planned run after a
        stop); the last epoch may end part-way, as a stop's does."""
        self._continue(total_epochs=target_epochs)

    def _continue(self, **plan) -> None:
        with self._lock:
            total = continued_total(self.state, self.saved_at is not None, self.resume_from, self.history.epochs_done, **plan)
            self._state_before_queue = self.state
            self.update_history(epochs_total=total)
            self.state, self.phase, self.error = JobState.QUEUED, Phase.WAITING, None
        self.trainer.enqueue(self)

    def requeue_after_failure(self) -> bool:
        """A failed job asked for again is tried again: from its checkpoint if it has one."""
        with self._lock:
            if self.state is not JobState.FAILED:
                return False
            self.state, self.error, self.phase = JobState.QUEUED, None, Phase.WAITING
            self.update_history(epochs_total=max(self.history.epochs_total, self.config.epochs))
            return True

    # ---- training (training thread only) --------------------------------------------------
    def run(self, dataset: Dataset) -> None:
        with self._lock:
            if self.state is not JobState.QUEUED:
                return
            self.state, self.phase = JobState.RUNNING, Phase.STARTING
            self._stop_event.clear()
        self.trainer.mark_dirty(self)
        started = time.perf_counter()
        try:
            models = self._train(dataset)
            stopped = not self.history.plan_done
            self._finish(dataset, models, JobState.STOPPED if stopped else JobState.FINISHED, time.perf_counter() - started)
        except Exception as error:  # the job reports every failure; the process lives on
            log.exception("Training %s failed", self.key)
            self._set(state=JobState.FAILED, error=str(error) if isinstance(error, StoreError) else f"{type(error).__name__}: {error}",
                      eta_seconds=None, phase=Phase.DONE, _state_before_queue=None)

    def _models_to_train(self) -> AutoencoderModels:
        """The kept training copy, else the checkpoint, else the saved model, else a fresh one."""
        trainer = self.trainer
        models = trainer.training_models(self.key)
        checkpoint = None
        if models is None and self.resume_from is not None:
            checkpoint = load_checkpoint(trainer.store, self.key)
        if models is None and checkpoint is None and self.saved_at is not None and self.saved_to_disk:
            models = trainer.store.load_models(self.config)
            self.replay = self.replay or load_replay(trainer.store.entry_dir(self.key))
        if models is None:
            models = build_models(self.config.architecture, self.config.code_size, self.config.training_options())
        compiled = getattr(models.autoencoder, "_ae_compiled", False)
        if not compiled:
            with BUILD_LOCK:
                models.autoencoder.compile(
                    optimizer=keras.optimizers.Adam(learning_rate=self.config.learning_rate),
                    loss=pixel_binary_crossentropy, jit_compile=uses_xla(self.config),
                )
            models.autoencoder._ae_compiled = True
        if checkpoint is not None:
            models.autoencoder.set_weights(checkpoint.weights)
            optimizer = models.autoencoder.optimizer
            optimizer.build(models.autoencoder.trainable_variables)
            for variable, value in zip(optimizer.variables, checkpoint.optimizer):
                variable.assign(value)
            self.history = History.from_dict(checkpoint.history)
        trainer.keep_training_models(self.key, models)
        return models

    def _train(self, dataset: Dataset) -> AutoencoderModels:
        config = self.config
        keras.utils.set_random_seed(config.seed + len(self.history.epoch_ends))  # process-global: training thread only
        models = self._models_to_train()
        indices = training_indices(config, len(dataset.x_train))
        x_train = dataset.train_images if indices is None else dataset.training_images(indices)
        x_val = dataset.test_images[:VALIDATION_SIZE]
        _, panel = panel_inputs(dataset.test_images, dataset.y_test, config)  # noisy for a denoising model
        replay_images = dataset.test_images[sample_indices(len(dataset.test_images))]
        self._set(steps_per_epoch=int(np.ceil(len(x_train) / config.batch_size)), step=0, phase=Phase.COMPILING)
        # Whole epochs from where the model stands; a stopped epoch counted only its steps done.
        epochs_to_run = max(1, int(np.ceil(self.history.epochs_total - self.history.epochs_done - EPOCH_TOLERANCE)))
        if not self._stop_event.is_set():
            fast_fit.fit(models.autoencoder, x_train, config.batch_size, epochs_to_run,
                         [_ProgressCallback(self, panel, config.batch_size, x_val, models.encoder, replay_images)], x_val,
                         seed=config.seed + len(self.history.epoch_ends), xla=uses_xla(config),
                         report_at_steps=REPLAY_STEPS if self.history.epochs_done == 0 else ())  # a fresh model's early frames
        return models

    def _finish(self, dataset: Dataset, models: AutoencoderModels, state: JobState, seconds: float) -> None:
        """Measure the test error and save the model; only then publish the final state,
        so a page that shows "Stopped" or "Finished" always finds the model on disk."""
        store = self.trainer.store
        self._set(phase=Phase.EVALUATING, step=0, eta_seconds=None)
        metrics = evaluate_reconstructions(dataset, predict(models.autoencoder, dataset.test_images))
        self._set(phase=Phase.SAVING)
        saved_at = time.time()
        with self._lock:
            history = self.history.with_changes(training_seconds=self.history.training_seconds + seconds)
        record = {**history.to_dict(),
                  "stopped_early": state is JobState.STOPPED, "test_metrics": metrics.to_dict(), "saved_at": saved_at}
        warning, on_disk = None, True
        try:
            store.save(self.config, models, record)
            save_replay(store.entry_dir(self.key), self.replay)
            self.trainer.checkpoints.flush()
            delete_checkpoint(store, self.key)
        except StoreError as error:
            on_disk = False
            warning = f"{error} This model is kept in memory and works until the server restarts."
            self.trainer.send_weights(self.key, saved_at, models.autoencoder.get_weights())
        self._set(state=state, test_metrics=metrics, history=history, saved_at=saved_at,
                  phase=Phase.DONE, warning=warning, saved_to_disk=on_disk, resume_from=None, _state_before_queue=None)

    def checkpoint(self, models: AutoencoderModels) -> None:
        """Weights, optimizer state and history at an epoch's end; a refusing disk only warns."""
        if not self.trainer.checkpoints_enabled:
            return
        optimizer = [variable.numpy() for variable in models.autoencoder.optimizer.variables]
        history = {**self.history.to_dict(), "config": self.config.to_dict()}
        self.trainer.checkpoints.submit(self.key, models.autoencoder.get_weights(), optimizer, history)

    @classmethod
    def from_record(cls, record: dict, trainer: "Trainer") -> "TrainingJob":
        """A finished or stopped job read back from disk (record validated by the store)."""
        job = cls(config=record["config"], trainer=trainer,
                  state=JobState.STOPPED if record["stopped_early"] else JobState.FINISHED, phase=Phase.DONE,
                  test_metrics=record["test_metrics"], saved_at=record["saved_at"], history=record["history"])
        return job


def uses_xla(config: TrainingConfig) -> bool:
    return JIT_COMPILE and ARCHITECTURES[config.architecture].xla


def validation_kl_term(model, images: np.ndarray, beta: float):
    """A function giving a variational model's beta x KL term, in the loss's per-pixel units,
    on the validation digits: the part of the loss the chart shows apart from reconstruction."""
    moments = model.get_layer("encoder_moments")

    def term() -> float:
        z_mean, z_log_var = (keras.ops.convert_to_numpy(part).astype(np.float64) for part in moments(images, training=False))
        kl = -0.5 * np.sum(1 + z_log_var - z_mean**2 - np.exp(z_log_var), axis=-1)
        return float(beta * kl.mean() / PIXELS)

    return term


class _ProgressCallback(keras.callbacks.Callback):
    """Copies Keras's progress into the job, refreshes the panel, checkpoints, honours stop()."""

    def __init__(self, job: TrainingJob, panel: np.ndarray, batch_size: int, validation: np.ndarray,
                 encoder, replay_images: np.ndarray):
        self.validation = validation
        self.encoder, self.replay_images = encoder, replay_images
        super().__init__()
        self.job = job
        self.panel = panel
        self.batch_size = batch_size
        self.start_position = job.history.epochs_done  # fit's epoch 0 starts here
        self.kl_term = None  # a variational model: its KL term on the validation digits, each epoch

    def set_model(self, model):
        super().set_model(model)
        config = self.job.config
        self.kl_term = validation_kl_term(model, self.validation, config.beta) \
            if ARCHITECTURES[config.architecture].variational else None
        self.last_panel = 0.0
        self.panel_sent = False
        self.rate_start: tuple[float, float] | None = None

    def _replay_frame(self, label: str, position: float, reconstructions: np.ndarray) -> None:
        """The codes of the replay's sample and the panel's reconstructions, as they are now."""
        codes = predict(self.encoder, self.replay_images).astype(np.float16)
        self.job.add_replay_frame(Frame(round(position, 4), label, codes, reconstructions.astype(np.float16)))

    def _refresh_panel(self, position: float) -> np.ndarray:
        reconstructions = predict(self.model, self.panel)[..., 0]
        self.job.show_panel(reconstructions, position, urgent=not self.panel_sent)  # the first one goes out at once
        self.panel_sent = True
        self.last_panel = time.perf_counter()
        return reconstructions

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()
        self.epoch_index = epoch
        self.previous = (0, 0.0)  # (step, running mean) at the last report of this epoch
        self.job.start_epoch()

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
            eta = max(0.0, (job.history.epochs_total - position) / epochs_per_second)
        # Keras reports the epoch's running mean; the mean of just the last few steps
        # follows the loss without the jump a running mean makes when an epoch starts.
        running_mean = float((logs or {}).get("loss", float("nan")))
        previous_step, previous_mean = self.previous
        recent = (step * running_mean - previous_step * previous_mean) / max(1, step - previous_step)
        self.previous = (step, running_mean)
        job.record_steps(step, position, recent, rate, eta)
        global_step = round(position * steps) if self.start_position == 0 else None
        if global_step in REPLAY_STEPS and step < steps:  # an epoch's end has its own frame
            self._replay_frame(f"step {global_step}", position, self._refresh_panel(position))
        elif now - self.last_panel >= PANEL_REFRESH_SECONDS:
            self._refresh_panel(position)
        if job.stop_requested or reached(position, job.history.epochs_total):  # a resume may end mid-epoch
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        """Also called for an epoch cut short by stop(): it then counts as the fraction done."""
        job = self.job
        stopping = job.stop_requested
        position = job.record_epoch(self.start_position, epoch, logs or {}, time.perf_counter() - self.epoch_started,
                                    self.kl_term)
        self._replay_frame(f"epoch {position:g}", position, self._refresh_panel(position))
        if not stopping and not reached(position, job.history.epochs_total):  # the final save follows at once otherwise
            job.checkpoint(self.job.trainer.training_models(job.key))


class Trainer:
    """All jobs of one dataset and store in the training process, and the thread that trains them."""

    def __init__(self, dataset: Dataset, store: ModelStore, on_change=None, crash_notes: dict | None = None,
                 send_weights=None):
        self.dataset = dataset
        self.store = store
        self._on_change = on_change or (lambda urgent: None)
        self._send_weights = send_weights
        self._jobs: dict[str, TrainingJob] = {}
        self._queue: list[TrainingJob] = []
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._current: TrainingJob | None = None
        self._dirty: set[str] = set()
        self._forgotten: dict[str, TrainingJob] = {}  # removed jobs, whose last snapshot still goes out
        self._kept: LRU[str, AutoencoderModels] = LRU(TRAINING_MODELS_KEPT)  # copies with optimizer state
        for line in store.clean_leftovers():
            log.info("Model store: %s", line)
        clean_checkpoints(store)
        self.checkpoints_enabled = store.writable_problem() is None
        self.checkpoints = CheckpointWriter(store)
        for record in store.records():
            job = TrainingJob.from_record(record, self)
            self._jobs[job.key] = job
        self._restore_interrupted(crash_notes or {})
        self._dirty.update(self._jobs)
        self._thread = threading.Thread(target=self._work, name="ae-training", daemon=True)
        self._thread.start()

    def _restore_interrupted(self, crash_notes: dict) -> None:
        """Runs cut short by a crash come back as failed, resumable from their last checkpoint."""
        root = self.store.root / ".checkpoints"
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            epochs = checkpoint_epochs(self.store, folder.name)
            checkpoint = load_checkpoint(self.store, folder.name) if epochs is not None else None
            job = self._jobs.get(folder.name)
            config = job.config if job else None
            if checkpoint is not None and config is None:
                try:
                    config = TrainingConfig.from_dict(checkpoint.history.get("config", {}))
                except (TypeError, ValueError):
                    config = None
            if checkpoint is None or config is None or config.key != folder.name or (job and epochs <= job.history.epochs_done):
                delete_checkpoint(self.store, folder.name)  # stale, or not ours
                continue
            job = job or TrainingJob(config=config, trainer=self)
            job.history = History.from_dict(checkpoint.history)
            note = crash_notes.get(job.key) or "The training process stopped unexpectedly."
            job.state, job.phase, job.resume_from = JobState.FAILED, Phase.DONE, float(epochs)
            job.error = f"{note} Train it again to resume from epoch {epochs:g}."
            self._jobs[job.key] = job

    # ---- what the service asks -----------------------------------------------------------------
    def request(self, config: TrainingConfig) -> TrainingJob:
        """The job for this config: the running or saved one if any, else a new queued one."""
        with self._lock:
            job = self._jobs.get(config.key)
            if job is None:
                job = self._jobs[config.key] = TrainingJob(config=config, trainer=self)
                self._append_to_queue(job)
            elif job.requeue_after_failure():
                self._append_to_queue(job)
            return job

    def get(self, key: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(key)

    def delete(self, key: str) -> None:
        """Forget a model: its saved entry and checkpoint. A running job is stopped first."""
        job = self.get(key)
        if job is not None and job.state in ACTIVE_STATES:
            raise ValueError("This model is training; stop it before deleting it.")
        self.store.delete(key)
        delete_checkpoint(self.store, key)
        with self._lock:
            if key in self._jobs:
                self._forgotten[key] = self._jobs.pop(key)
        self._kept.pop(key)
        self._on_change(True)

    def snapshots_to_publish(self, next_version) -> tuple[list[JobSnapshot], list[JobSnapshot]]:
        """Snapshots of the jobs that changed since the last call, and the last snapshots of
        jobs removed since then (a queued job stopped before it began, a deleted model)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            forgotten, self._forgotten = self._forgotten, {}
            jobs = [self._jobs[key] for key in dirty if key in self._jobs]
            positions = {job.key: index + 1 for index, job in enumerate(self._queue)}
        return ([job.snapshot(next_version(), positions.get(job.key)) for job in jobs],
                [job.snapshot(next_version(), None) for job in forgotten.values()])

    def all_snapshots(self, next_version) -> list[JobSnapshot]:
        """Every job's snapshot, panels included: what a web process that just attached is told."""
        with self._lock:
            jobs = list(self._jobs.values())
            positions = {job.key: index + 1 for index, job in enumerate(self._queue)}
        return [job.snapshot(next_version(), positions.get(job.key)) for job in jobs]

    def mark_dirty(self, job: TrainingJob, urgent: bool = True) -> None:
        """Progress (urgent=False) is published with the next batch; anything else at once."""
        with self._lock:
            self._dirty.add(job.key)
        self._on_change(urgent)

    def send_weights(self, key: str, saved_at: float, weights: list) -> None:
        if self._send_weights is not None:
            self._send_weights(key, saved_at, weights)

    # ---- training copies kept in memory ----------------------------------------------------
    def training_models(self, key: str) -> AutoencoderModels | None:
        return self._kept.get(key)

    def keep_training_models(self, key: str, models: AutoencoderModels) -> None:
        """At most TRAINING_MODELS_KEPT copies: memory stays flat however many configs a room tries."""
        self._kept.put(key, models)

    # ---- the queue -----------------------------------------------------------------------------
    def _append_to_queue(self, job: TrainingJob) -> None:
        """Caller holds `_lock`. Every queued job's place changes, so all of them are republished."""
        if job not in self._queue:
            self._queue.append(job)
            self._dirty.update(queued.key for queued in self._queue)
            self._wakeup.notify_all()
        self._dirty.add(job.key)

    def enqueue(self, job: TrainingJob) -> None:
        with self._lock:
            self._append_to_queue(job)
        self._on_change(True)

    def dequeue(self, job: TrainingJob) -> None:
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
            self._dirty.update(queued.key for queued in self._queue)
            if job.saved_at is None and job.history.epochs_done == 0 and job.resume_from is None:
                self._forgotten[job.key] = self._jobs.pop(job.key, job)
        self._on_change(True)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wakeup.wait()
                job = self._queue.pop(0)
                self._current = job
                self._dirty.update(queued.key for queued in self._queue)
            try:
                job.run(self.dataset)
            finally:
                with self._lock:
                    self._current = None
                self._on_change(True)
