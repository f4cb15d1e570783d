"""Speed and memory benchmark: `python -m ae.bench`.

Prints, from one run on the full training set with the reference model (code size 49,
batch 256): seconds per epoch through our training job, through plain `model.fit` with
Keras defaults, and for a numpy floor doing the same matrix products; the same job for every
architecture; then 2-D projection times for 10,000 codes and the process's peak memory. With
`--family`, also every architecture's test BCE at code sizes 2, 8, 32 and 49 against PCA. Baselines are measured in the same
run, on the same machine, so the ratios mean something on a shared, noisy machine.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np

BATCH_SIZE = 256
CODE_SIZE = 49


def _steady(seconds: list[float]) -> float:
    """Median epoch time after the first epoch, which includes compilation."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def time_job(epochs: int, architecture: str = "dense") -> list[float]:
    from ae.config import TrainingConfig
    from ae.data import load_dataset
    from ae.manager import JobManager
    from ae.store import ModelStore

    dataset = load_dataset()
    manager = JobManager(dataset, ModelStore(__import__("pathlib").Path(tempfile.mkdtemp(prefix="ae-bench-"))))
    try:
        job = manager.request(TrainingConfig(architecture=architecture, code_size=CODE_SIZE, epochs=epochs,
                                             batch_size=BATCH_SIZE))
        while job.snapshot().is_active:
            time.sleep(0.05)
        snapshot = job.snapshot()
    finally:
        manager.close()
    if snapshot.error:
        raise RuntimeError(snapshot.error)
    return list(snapshot.epoch_seconds)


def time_plain_fit(epochs: int) -> list[float]:
    import keras

    from ae.data import load_dataset
    from ae.models import build_models

    images = load_dataset().train_images
    keras.utils.set_random_seed(0)
    autoencoder = build_models("dense", CODE_SIZE).autoencoder
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.started)

    autoencoder.fit(images, images, batch_size=BATCH_SIZE, epochs=epochs, verbose=0, callbacks=[EpochTimer()])
    return seconds


def time_numpy_floor(repeats: int = 3) -> float:
    """One epoch of the model's matrix products (forward, and the weight and input gradients)."""
    from ae.data import load_dataset

    flat = load_dataset().train_images.reshape(-1, 784)
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(784, CODE_SIZE)).astype(np.float32)
    w2 = rng.normal(size=(CODE_SIZE, 784)).astype(np.float32)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(flat), BATCH_SIZE):
            batch = flat[start : start + BATCH_SIZE]
            code = batch @ w1
            output = code @ w2
            grad_w2 = code.T @ output
            grad_code = output @ w2.T
            grad_w1 = batch.T @ grad_code
        best = min(best, time.perf_counter() - started)
    del grad_w1, grad_w2
    return best


def time_projections(count: int = 10_000) -> list[tuple[str, float]]:
    from ae.projection import project

    codes = np.random.default_rng(0).random((count, CODE_SIZE)).astype(np.float32)
    rows = []
    for label, method in (("PCA", "pca"), ("UMAP (cold: import + compile)", "umap"), ("UMAP (warm)", "umap"), ("t-SNE", "tsne")):
        started = time.perf_counter()
        result = project(codes, method, max_points=count)
        rows.append((f"{label}, {len(result.indices):,} codes", time.perf_counter() - started))
    return rows


FAMILY_CODE_SIZES = (2, 8, 32, 49)
FAMILY_EPOCHS = 10


def family_table(epochs: int = FAMILY_EPOCHS, code_sizes=FAMILY_CODE_SIZES) -> None:
    """Test BCE of every architecture at a few code sizes after `epochs` epochs, next to PCA
    with as many components: the README's comparison of the family."""
    from ae.config import TrainingConfig
    from ae.data import load_dataset
    from ae.manager import JobManager
    from ae.metrics import evaluate_pca
    from ae.models import ARCHITECTURES
    from ae.store import ModelStore

    dataset = load_dataset()
    manager = JobManager(dataset, ModelStore(__import__("pathlib").Path(tempfile.mkdtemp(prefix="ae-family-"))))
    try:
        jobs = {(name, size): manager.request(TrainingConfig(architecture=name, code_size=size, epochs=epochs))
                for size in code_sizes for name in ARCHITECTURES}
        while any(job.snapshot().is_active for job in jobs.values()):
            time.sleep(0.5)
    finally:
        manager.close()
    print(f"\ntest BCE after {epochs} epochs (full MNIST, batch 256)")
    print(f"{'model':<28}" + "".join(f"{'code ' + str(size):>11}" for size in code_sizes))
    for name, spec in ARCHITECTURES.items():
        cells = []
        for size in code_sizes:
            snapshot = jobs[(name, size)].snapshot()
            cells.append(f"{snapshot.test_metrics.bce:>11.4f}" if snapshot.test_metrics else f"{'failed':>11}")
        print(f"{spec.label:<28}" + "".join(cells), flush=True)
    print(f"{'PCA (same components)':<28}" + "".join(f"{evaluate_pca(dataset, size).bce:>11.4f}" for size in code_sizes))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per training measurement (first is warm-up)")
    parser.add_argument("--skip-projections", action="store_true")
    parser.add_argument("--skip-architectures", action="store_true", help="time the dense model only")
    parser.add_argument("--family", action="store_true",
                        help=f"also train every architecture at code sizes {FAMILY_CODE_SIZES} for {FAMILY_EPOCHS} epochs "
                             "and print their test BCE next to PCA's")
    args = parser.parse_args(argv)

    print(f"Autoencoder Explorer benchmark: dense model, code {CODE_SIZE}, batch {BATCH_SIZE}, "
          f"full MNIST training set, {os.cpu_count()} CPU(s)", flush=True)
    job = time_job(args.epochs)
    plain = time_plain_fit(args.epochs)
    floor = time_numpy_floor()
    job_s, plain_s = _steady(job), _steady(plain)
    print(f"{'path':<44}{'s/epoch':>10}{'first epoch':>13}{'x floor':>9}")
    print(f"{'our training job (XLA, steps/execution)':<44}{job_s:>10.3f}{job[0]:>13.2f}{job_s / floor:>9.2f}")
    print(f"{'plain model.fit, Keras defaults':<44}{plain_s:>10.3f}{plain[0]:>13.2f}{plain_s / floor:>9.2f}")
    print(f"{'numpy floor (same matrix products)':<44}{floor:>10.3f}{'':>13}{1.0:>9.2f}")
    print(f"speed-up of our job over plain fit: {plain_s / job_s:.2f}x", flush=True)
    if not args.skip_architectures:
        from ae.models import ARCHITECTURES

        print(f"\n{'architecture (our job, code 49)':<44}{'s/epoch':>10}{'first epoch':>13}{'x dense':>9}")
        for name, spec in ARCHITECTURES.items():
            seconds = job if name == "dense" else time_job(args.epochs, name)
            print(f"{spec.label:<44}{_steady(seconds):>10.3f}{seconds[0]:>13.2f}{_steady(seconds) / job_s:>9.2f}", flush=True)
    if not args.skip_projections:
        print(f"\n{'2-D projection':<44}{'seconds':>10}")
        for label, seconds in time_projections():
            print(f"{label:<44}{seconds:>10.2f}", flush=True)
    if args.family:
        family_table()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak memory (max RSS): {peak:,.0f} MiB; training process: {children:,.0f} MiB")
    print(f"ratio job/floor: {job_s / floor:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
