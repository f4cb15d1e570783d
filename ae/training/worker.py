"""Training one job's run in a slot: the Keras side of the training service.

The training service (`ae.training.trainer`) keeps the jobs, the queue and who asked; it never
imports Keras. Each of its slots (`ae.training.slots`) hands one run at a time, as a
`RunOrder`, to a `Worker`: in a process of its own on this machine (`python -m
ae.training.slots`), or in a Ray worker on a cluster's node (`ae.training.ray_slots`). The
worker trains the job with the same `TrainingJob` object the service keeps, checkpoints at
each epoch's end, saves the model, and sends the job as it stands (`Progress`) a few times a
second. A checkpoint newer than the order means an earlier try of this run was lost with its
node: the run resumes from it, and says so.
"""
from __future__ import annotations

import logging
import threading
import time

import keras
import numpy as np

from ae.analysis.metrics import evaluate_reconstructions
from ae.analysis.replay import REPLAY_STEPS, Frame, load_replay, sample_indices, save_replay
from ae.analysis.your_digit import make_digit_reader, save_digit_reader
from ae.lru import LRU
from ae.model.architectures import ARCHITECTURES, BUILD_LOCK, PIXELS, AutoencoderModels, build_models, predict
from ae.model.config import TrainingConfig
from ae.model.data import Dataset
from ae.model.history import EPOCH_TOLERANCE, History, reached
from ae.storage.checkpoint import CheckpointWriter, checkpoint_epochs, delete_checkpoint, load_checkpoint
from ae.storage.store import ModelStore, StoreError, disk_problem
from ae.training import fast_fit
from ae.training.protocol import Progress, RunOrder, Weights
from ae.training.snapshot import JobState, Phase, panel_inputs, training_indices
from ae.training.trainer import TrainingJob

log = logging.getLogger(__name__)

VALIDATION_SIZE = 1_000  # small, because Keras finishes validation even after a stop
# Measured on 2 CPU cores (python -m ae.bench): XLA-compiled steps, many per call, are the
# fastest setting (`ae.training.fast_fit`); callbacks then fire every STEPS_PER_CALL steps.
JIT_COMPILE = True
PANEL_REFRESH_SECONDS = 1.0
PROGRESS_INTERVAL = 0.25  # progress goes to the service at most this often (state changes at once)
TRAINING_MODELS_KEPT = 2  # training copies (with optimizer state) kept for a quick Continue


def pixel_binary_crossentropy(y_true, y_pred):
    """Keras's binary cross-entropy, averaged over each image's pixels, on flattened images.

    The same numbers as `loss="binary_crossentropy"` on (N, 28, 28, 1) tensors, but XLA on
    CPU handles a trailing axis of length 1 badly: flattening first makes an epoch ~15%
    faster (measured with `python -m ae.bench`).
    """
    pixels = int(np.prod(y_pred.shape[1:]))  # static under fit: (28, 28, 1) -> 784
    return keras.losses.binary_crossentropy(keras.ops.reshape(y_true, (-1, pixels)), keras.ops.reshape(y_pred, (-1, pixels)))


ABANDON = "abandon"  # the service's answer to a try of a run it no longer follows


class RunAbandoned(Exception):
    """The service follows a newer try of this run (this one's node was given up for lost, yet
    its process lived on): end at once, saving and reporting nothing."""


class Worker:
    """One slot's trainer: one run at a time, the training copies it keeps for a quick
    Continue, and its checkpoint writer. It is the `trainer` of the jobs it trains.

    `send(message)` carries `Progress` and `Weights` to the service and returns True when the
    service wants the run stopped (a cluster slot learns of a Stop this way; a local slot gets
    a `StopRun` message instead)."""

    def __init__(self, dataset: Dataset, store: ModelStore, send, where: str):
        self.dataset, self.store = dataset, store
        self.send, self.where = send, where
        self.checkpoints = CheckpointWriter(store)
        self.checkpoints_enabled = store.writable_problem() is None
        self._kept: LRU[str, tuple[AutoencoderModels, list, float]] = LRU(TRAINING_MODELS_KEPT)  # models, replay, epochs
        self._publish_lock = threading.RLock()
        self._last_sent = 0.0
        self._sent_panel = -1
        self.job: TrainingJob | None = None

    # ---- runs ----------------------------------------------------------------------------
    def prepare(self, order: RunOrder) -> TrainingJob:
        """The job of an order, running. A checkpoint the order does not know of was left by
        an earlier try of this run (its node was lost): the run resumes from it."""
        config = TrainingConfig.from_dict(order.config)
        history = History.from_dict(order.history)
        resume_from, note = order.resume_from, None
        checkpointed = checkpoint_epochs(self.store, config.key)
        if checkpointed is not None and checkpointed > max(history.epochs_done, resume_from or 0.0) + EPOCH_TOLERANCE:
            resume_from = checkpointed
            note = (f"The first try of this run was lost with its worker; it resumed from its checkpoint at "
                    f"epoch {checkpointed:g} on {self.where}.")
        job = TrainingJob(config=config, trainer=self, state=JobState.RUNNING, phase=Phase.STARTING, history=history,
                          saved_at=order.saved_at, saved_to_disk=order.saved_to_disk, resume_from=resume_from,
                          warning=note)
        self.job, self._sent_panel = job, -1
        return job

    def run(self, order: RunOrder | TrainingJob) -> TrainingJob:
        """Train one run to its end (finished, stopped or failed); the job's last state has
        been sent when this returns."""
        job = order if isinstance(order, TrainingJob) else self.prepare(order)
        self.mark_dirty(job)
        started = time.perf_counter()
        try:
            models = self._train(job)
            stopped = not job.history.plan_done
            self._finish(job, models, JobState.STOPPED if stopped else JobState.FINISHED, time.perf_counter() - started)
        except RunAbandoned:
            log.warning("Run of %s abandoned: the service follows a newer try of it", job.key)
        except Exception as error:  # the job reports every failure; the worker lives on
            log.exception("Training %s failed", job.key)
            try:
                job._set(state=JobState.FAILED, eta_seconds=None, phase=Phase.DONE,
                         error=str(error) if isinstance(error, StoreError) else f"{type(error).__name__}: {error}")
            except RunAbandoned:
                pass
        finally:
            self.job = None
        return job

    def stop(self, key: str) -> None:
        job = self.job
        if job is not None and job.key == key:
            job.stop()

    def _models_to_train(self, job: TrainingJob) -> AutoencoderModels:
        """The kept training copy, else the checkpoint, else the saved model, else a fresh one."""
        kept = self._kept.pop(job.key)  # put back only by a run that ends well
        models, checkpoint = None, None
        if kept is not None and abs(kept[2] - job.history.epochs_done) < EPOCH_TOLERANCE and job.saved_at is not None:
            models, job.replay = kept[0], kept[1]  # the model exactly as the record has it
        if models is None and job.resume_from is not None:
            checkpoint = load_checkpoint(self.store, job.key)
        if job.saved_at is not None and job.saved_to_disk and not job.replay:
            job.replay = load_replay(self.store.entry_dir(job.key))
        if models is None and checkpoint is None and job.saved_at is not None and job.saved_to_disk:
            models = self.store.load_models(job.config)
        if models is None:
            models = build_models(job.config.architecture, job.config.code_size, job.config.training_options())
        if not getattr(models.autoencoder, "_ae_compiled", False):
            with BUILD_LOCK:
                models.autoencoder.compile(
                    optimizer=keras.optimizers.Adam(learning_rate=job.config.learning_rate),
                    loss=pixel_binary_crossentropy, jit_compile=uses_xla(job.config),
                )
            models.autoencoder._ae_compiled = True
        if checkpoint is not None:
            models.autoencoder.set_weights(checkpoint.weights)
            optimizer = models.autoencoder.optimizer
            optimizer.build(models.autoencoder.trainable_variables)
            for variable, value in zip(optimizer.variables, checkpoint.optimizer):
                variable.assign(value)
            job.history = History.from_dict(checkpoint.history)
        return models

    def _train(self, job: TrainingJob) -> AutoencoderModels:
        config, dataset = job.config, self.dataset
        keras.utils.set_random_seed(config.seed + len(job.history.epoch_ends))  # process-global: one run at a time
        models = self._models_to_train(job)
        indices = training_indices(config, len(dataset.x_train))
        x_train = dataset.train_images if indices is None else dataset.training_images(indices)
        x_val = dataset.test_images[:VALIDATION_SIZE]
        _, panel = panel_inputs(dataset.test_images, dataset.y_test, config)  # noisy for a denoising model
        replay_images = dataset.test_images[sample_indices(len(dataset.test_images))]
        job._set(steps_per_epoch=int(np.ceil(len(x_train) / config.batch_size)), step=0, phase=Phase.COMPILING)
        # Whole epochs from where the model stands; a stopped epoch counted only its steps done.
        epochs_to_run = max(1, int(np.ceil(job.history.epochs_total - job.history.epochs_done - EPOCH_TOLERANCE)))
        if not job.stop_requested:
            fast_fit.fit(models.autoencoder, x_train, config.batch_size, epochs_to_run,
                         [_ProgressCallback(job, self, models, panel, x_val, replay_images)], x_val,
                         seed=config.seed + len(job.history.epoch_ends), xla=uses_xla(config),
                         report_at_steps=REPLAY_STEPS if job.history.epochs_done == 0 else ())  # a fresh model's early frames
        return models

    def _finish(self, job: TrainingJob, models: AutoencoderModels, state: JobState, seconds: float) -> None:
        """Measure the test error and save the model; only then publish the final state,
        so a page that shows "Stopped" or "Finished" always finds the model on disk."""
        store = self.store
        job._set(phase=Phase.EVALUATING, step=0, eta_seconds=None)
        metrics = evaluate_reconstructions(self.dataset, predict(models.autoencoder, self.dataset.test_images))
        job._set(phase=Phase.SAVING)
        saved_at = time.time()
        with job._lock:
            history = job.history.with_changes(training_seconds=job.history.training_seconds + seconds)
        record = {**history.to_dict(),
                  "stopped_early": state is JobState.STOPPED, "test_metrics": metrics.to_dict(), "saved_at": saved_at}
        warning, on_disk = None, True
        try:
            store.save(job.config, models, record)
        except StoreError as error:
            on_disk = False
            warning = f"{error} This model is kept in memory and works until the server restarts."
            self.send_weights(job.key, saved_at, models.autoencoder.get_weights())
        else:
            try:  # the model is saved: a replay the disk refuses costs the replay, never the model
                save_replay(store.entry_dir(job.key), job.replay)
            except OSError as error:
                warning = f"The model is saved, but its training replay is not: {disk_problem(error, store.root)}."
            reader_warning = self._save_digit_reader(job.key, models, saved_at)
            warning = warning or reader_warning
            self.checkpoints.flush()
            delete_checkpoint(store, job.key)
        job._set(state=state, test_metrics=metrics, history=history, saved_at=saved_at,
                 phase=Phase.DONE, warning=warning, saved_to_disk=on_disk, resume_from=None)
        # At most TRAINING_MODELS_KEPT copies, so memory stays flat; a replay saved with its model
        # leaves memory (a Continue reads it back), only an in-memory model's stays with it.
        self._kept.put(job.key, (models, [] if on_disk else job.replay, history.epochs_done))
        job.replay = []

    def _save_digit_reader(self, key: str, models: AutoencoderModels, saved_at: float) -> str | None:
        """The Your digit page's reader for these weights, beside them, before the run is
        published as done: no page's first drawing waits for it. A warning if it is not saved."""
        try:
            save_digit_reader(self.store.entry_dir(key), make_digit_reader(models.encoder, self.dataset, saved_at))
        except OSError as error:
            return f"The model is saved, but its digit reader is not: {disk_problem(error, self.store.root)}."
        except Exception:  # the page makes it itself, with a note, rather than the run failing
            log.exception("The digit reader of %s was not made", key)
        return None

    def checkpoint(self, job: TrainingJob, models: AutoencoderModels) -> None:
        """Weights, optimizer state and history at an epoch's end; a refusing disk only warns."""
        if not self.checkpoints_enabled:
            return
        optimizer = [variable.numpy() for variable in models.autoencoder.optimizer.variables]
        history = {**job.history.to_dict(), "config": job.config.to_dict()}
        self.checkpoints.submit(job.key, models.autoencoder.get_weights(), optimizer, history)

    # ---- the job's trainer ------------------------------------------------------------------
    def mark_dirty(self, job: TrainingJob, urgent: bool = True) -> None:
        """Send the job as it stands: a state change at once, progress at most every PROGRESS_INTERVAL."""
        with self._publish_lock:
            now = time.monotonic()
            if not urgent and now - self._last_sent < PROGRESS_INTERVAL:
                return
            self._last_sent = now
            snapshot = job.snapshot(0, None)
            if snapshot.panel_version == self._sent_panel:
                snapshot = snapshot.with_changes(panel_reconstructions=None)
            self._sent_panel = snapshot.panel_version
            answer = self.send(Progress(snapshot, urgent, self.where))
            if answer == ABANDON:
                raise RunAbandoned()
            if answer:
                job.stop()

    def stop_running(self, job: TrainingJob) -> None:
        """The job's own stop event is set; nothing else to tell."""

    def send_weights(self, key: str, saved_at: float, weights: list) -> None:
        self.send(Weights(key, saved_at, weights))


def uses_xla(config: TrainingConfig) -> bool:
    """XLA where it is quicker: not for convolutions, nor for a denoising model, whose fresh noise
    for every pixel of every batch XLA draws 15x slower than TensorFlow's own kernels on a CPU
    (dense code 32, masking 0.3: 7.4 s an epoch with XLA, 0.48 s without; plain: 0.14 s with)."""
    return JIT_COMPILE and ARCHITECTURES[config.architecture].xla and not config.denoising


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

    def __init__(self, job: TrainingJob, worker: Worker, models: AutoencoderModels, panel: np.ndarray,
                 validation: np.ndarray, replay_images: np.ndarray):
        super().__init__()
        self.job, self.worker, self.models = job, worker, models
        self.validation = validation
        self.encoder, self.replay_images = models.encoder, replay_images
        self.panel = panel
        self.batch_size = job.config.batch_size
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
            self.worker.checkpoint(job, self.models)
