"""`fit` for an autoencoder, faster: k optimizer steps per call of one compiled function.

Keras's `fit` feeds batches through a `tf.data` pipeline and returns to Python between
executions; on two CPU cores that costs more than the article's small model's arithmetic.
Here the whole training set sits in one tensor, each epoch's shuffled order is a table of
batch indices, and one function (XLA-compiled where the architecture allows) gathers each
batch and runs Keras's own `train_step` on it: the same loss, optimizer, metrics, layers in
training mode and random seeds as `fit`. Between calls, callbacks see progress and may stop
training, exactly as `fit`'s do, so Stop still acts within one call (`STEPS_PER_CALL` steps).
"""
from __future__ import annotations

import numpy as np

STEPS_PER_CALL = 16


class CompiledSteps:
    """One model's training function: `run(batch_indices, count)` takes `count` optimizer
    steps over the rows of a (STEPS_PER_CALL, batch) index table and returns the epoch's
    running loss. Index tables have fixed shapes, so a run compiles three times at most: full
    calls, shorter calls (an epoch's remainder, the replay's early frames), and the shorter
    function again for an epoch's last, smaller batch."""

    def __init__(self, model, images: np.ndarray, validation: np.ndarray, batch_size: int, xla: bool):
        import tensorflow as tf

        self.model = model
        if not model.optimizer.built:  # its variables made inside the traced step would cost a second trace
            model.optimizer.build(model.trainable_variables)
        self.images = tf.convert_to_tensor(images)  # 10x quicker than tf.constant for 188 MB
        self.validation = tf.convert_to_tensor(validation)
        self.batch_size = batch_size
        # One trace for every table and step count (a count passed as a plain value would be
        # traced again per value); XLA still compiles once per table shape.
        table, count = tf.TensorSpec((STEPS_PER_CALL, None), tf.int32), tf.TensorSpec((), tf.int32)
        self._some_steps = tf.function(self._steps, jit_compile=xla, input_signature=[table, count])
        self._all_steps = tf.function(self._every_step, jit_compile=xla, input_signature=[table])
        self._validation_function = tf.function(self._validation_loss, jit_compile=xla)

    def _step(self, batch_indices, index):
        import tensorflow as tf

        batch = tf.gather(self.images, batch_indices[index])
        return self.model.train_step((batch, batch))["loss"]

    def _every_step(self, batch_indices):
        """All STEPS_PER_CALL rows: a fixed trip count, the fastest loop (most calls)."""
        import tensorflow as tf

        loss = tf.constant(float("nan"))
        for index in tf.range(STEPS_PER_CALL):
            loss = self._step(batch_indices, index)
        return loss

    def _steps(self, batch_indices, count):
        """The first `count` rows: the same fixed trip count with the other rows skipped, since
        XLA would compile a loop bounded by the count again for every distinct count."""
        import tensorflow as tf

        loss = tf.constant(float("nan"))
        for index in tf.range(STEPS_PER_CALL):
            loss = tf.cond(index < count, lambda: self._step(batch_indices, index), lambda: loss)
        return loss

    def run(self, batch_indices: np.ndarray, count: int) -> float:
        if count == STEPS_PER_CALL:
            return float(self._all_steps(batch_indices))
        return float(self._some_steps(batch_indices, np.int32(count)))

    def _validation_loss(self):
        """Full batches in a loop, then the smaller last batch: two traced test steps, not one per
        batch (1,000 digits in batches of 8 unrolled into 125 copies took 15 s to compile)."""
        import tensorflow as tf

        size = int(self.validation.shape[0])
        full = size // self.batch_size
        loss = tf.constant(float("nan"))
        if full:
            batches = tf.reshape(self.validation[: full * self.batch_size],
                                 (full, self.batch_size, *self.validation.shape[1:]))
            for index in tf.range(full):
                loss = self.model.test_step((batches[index], batches[index]))["loss"]
        if size % self.batch_size:
            rest = self.validation[full * self.batch_size :]
            loss = self.model.test_step((rest, rest))["loss"]
        return loss

    def validation_loss(self) -> float:
        """`evaluate`'s loss on the validation images, batch-size weighted, without its
        per-call set-up (0.1 s per epoch here). It resets the metrics, as `evaluate` does."""
        for metric in self.model.metrics:
            metric.reset_state()
        return float(self._validation_function())


def epoch_batches(count: int, batch_size: int, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """A shuffled epoch as index tables of STEPS_PER_CALL batches each, with how many rows of
    each table to run: `fit(shuffle=True)`'s order of full batches, then one smaller batch."""
    order = rng.permutation(count).astype(np.int32)
    full = count // batch_size
    tables = []
    for start in range(0, full, STEPS_PER_CALL):
        rows = order[start * batch_size : min(full, start + STEPS_PER_CALL) * batch_size].reshape(-1, batch_size)
        table = np.zeros((STEPS_PER_CALL, batch_size), dtype=np.int32)
        table[: len(rows)] = rows
        tables.append((table, len(rows)))
    if count % batch_size:
        last = order[full * batch_size :]
        tables.append((np.resize(last, (STEPS_PER_CALL, len(last))), 1))
    return tables


def fit(model, images: np.ndarray, batch_size: int, epochs: int, callbacks, validation: np.ndarray,
        seed: int, xla: bool, report_at_steps=()) -> None:
    """Train `model` (compiled, with its optimizer) to reconstruct `images`, like
    `model.fit(images, images, batch_size, epochs, validation_data=(validation, validation),
    shuffle=True)`, calling the callbacks' `on_epoch_begin`, `on_train_batch_end` and
    `on_epoch_end` (with `loss` and `val_loss`) the way `fit` does, at every call's end.
    A call also ends after each step count in `report_at_steps` (the training replay's early
    frames), so the callbacks see the model at exactly those steps."""
    steps = CompiledSteps(model, images, validation, batch_size, xla)
    rng = np.random.default_rng(seed)
    model.stop_training = False
    for callback in callbacks:
        callback.set_model(model)
    total_steps = 0
    for epoch in range(epochs):
        for metric in model.metrics:
            metric.reset_state()
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        done = 0
        loss = float("nan")
        for table, count in epoch_batches(len(images), batch_size, rng):
            offset = 0
            while offset < count and not model.stop_training:
                upcoming = [mark - total_steps for mark in report_at_steps if mark > total_steps]
                run = min([count - offset, *upcoming])
                rows = table if offset == 0 else np.concatenate([table[offset:], table[:offset]])
                loss = steps.run(rows, run)
                offset, done, total_steps = offset + run, done + run, total_steps + run
                for callback in callbacks:
                    callback.on_train_batch_end(done - 1, {"loss": loss})
            if model.stop_training:
                break
        logs = {"loss": loss, "val_loss": steps.validation_loss()}
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            return
