"""Speed and memory benchmark: `python -m ae.bench`.

Prints, from one run on the full training set (code size 49, batch 256):
- seconds per epoch of the article's model through our training job (`ae.training.fast_fit`), through
  plain `model.fit` with Keras defaults, and for a numpy floor doing the same matrix products;
  the first epoch, and how long the first panel of reconstructions takes to reach the web side;
- the same job and plain fit for every architecture;
- the article's model trained 10 epochs both ways (our job, plain fit): their test BCE;
- UMAP and t-SNE of 10,000 codes of that model: before (umap-learn's defaults, scikit-learn's
  t-SNE, in this process) and now (the map process: a cold start twice, then warm), each with
  the kNN accuracy of its 2-D map (5 neighbours, 10-fold): the maps must separate digits as well;
- peak memory. With `--queue`, only the queue table (`queue_table`): 8 configs through one
  slot, S local slots and a local two-node Ray cluster. With `--room`, only the lecturer's Train
  with a student's 16-size sweep queued, first come first served against the fair queue. With `--family`, also every architecture's test BCE at code sizes 2, 8, 32 and 49
  against PCA. Baselines are measured in the same run, on the same machine, so the ratios mean
  something on a shared, noisy machine.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH_SIZE = 256
CODE_SIZE = 49
QUALITY_EPOCHS = 10
MAP_POINTS = 10_000


def _steady(seconds: list[float]) -> float:
    """Median epoch time after the first epoch, which includes compilation."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def _temporary_manager():
    from ae.model.data import load_dataset
    from ae.jobs.manager import JobManager
    from ae.storage.store import ModelStore

    return JobManager(load_dataset(), ModelStore(Path(tempfile.mkdtemp(prefix="ae-bench-"))))


def _wait(job):
    while job.snapshot().is_active:
        time.sleep(0.02)
    snapshot = job.snapshot()
    if snapshot.error:
        raise RuntimeError(snapshot.error)
    return snapshot


def time_jobs(manager, epochs: int, architectures) -> tuple[dict, float]:
    """Epoch seconds of each architecture through our job, and the seconds from asking for the
    article's model until its first panel of reconstructions reached this (the web) side."""
    from ae.model.config import TrainingConfig

    manager.request(TrainingConfig(code_size=2, epochs=1, train_size=1000, batch_size=BATCH_SIZE))  # loads TensorFlow
    while manager.latest() is None or manager.latest().snapshot().is_active:
        time.sleep(0.05)
    seconds, first_panel = {}, float("nan")
    for architecture in architectures:
        started = time.perf_counter()
        job = manager.request(TrainingConfig(architecture=architecture, code_size=CODE_SIZE, epochs=epochs,
                                             batch_size=BATCH_SIZE))
        if architecture == "dense":
            while job.snapshot().panel_reconstructions is None and job.snapshot().is_active:
                time.sleep(0.01)
            first_panel = time.perf_counter() - started
        seconds[architecture] = list(_wait(job).history.epoch_seconds)
    return seconds, first_panel


def time_plain_fit(epochs: int, architecture: str = "dense") -> list[float]:
    import keras

    from ae.model.data import load_dataset
    from ae.model.architectures import build_models

    images = load_dataset().train_images
    keras.utils.set_random_seed(0)
    autoencoder = build_models(architecture, CODE_SIZE).autoencoder
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.started)

    autoencoder.fit(images, images, batch_size=BATCH_SIZE, epochs=epochs, verbose=0, callbacks=[EpochTimer()])
    return seconds


def quality_both_ways(manager, epochs: int = QUALITY_EPOCHS) -> tuple[float, float, np.ndarray]:
    """The article's model, one config trained by our job and by plain `fit` with the same loss,
    optimizer and batches: both test BCEs, and the job's model's codes of the test digits."""
    import keras

    from ae.model.config import TrainingConfig
    from ae.analysis.metrics import evaluate_reconstructions
    from ae.model.architectures import build_models, predict
    from ae.training.worker import VALIDATION_SIZE, pixel_binary_crossentropy

    config = TrainingConfig(code_size=CODE_SIZE, epochs=epochs, batch_size=BATCH_SIZE)
    job_bce = _wait(manager.request(config)).test_metrics.bce
    dataset = manager.dataset
    keras.utils.set_random_seed(config.seed)
    models = build_models("dense", CODE_SIZE)
    models.autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                               loss=pixel_binary_crossentropy)
    images, validation = dataset.train_images, dataset.test_images[:VALIDATION_SIZE]
    models.autoencoder.fit(images, images, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=0,
                           validation_data=(validation, validation))
    fit_bce = evaluate_reconstructions(dataset, predict(models.autoencoder, dataset.test_images)).bce
    saved = manager.store.load_models(config)
    return job_bce, fit_bce, predict(saved.encoder, dataset.test_images)


def time_numpy_floor(repeats: int = 3) -> float:
    """One epoch of the model's matrix products (forward, and the weight and input gradients),
    with numpy's BLAS on one thread per core."""
    from ae.model.data import load_dataset

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


def knn_accuracy(coordinates: np.ndarray, labels: np.ndarray) -> float:
    """How well a 2-D map separates the digits: 5-nearest-neighbour accuracy, 10-fold."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    return float(cross_val_score(KNeighborsClassifier(5), coordinates, labels, cv=10).mean())


def maps_before(codes: np.ndarray) -> list[tuple[str, float, np.ndarray]]:
    """The earlier maps, in this process: umap-learn's defaults (pynndescent, 500 epochs at this
    size) cold (import and compile) and warm, and scikit-learn's t-SNE."""
    import warnings

    from sklearn.manifold import TSNE

    rows = []
    for label in ("UMAP before, cold (import + compile)", "UMAP before, warm", "UMAP before, warm again"):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import umap

            coordinates = umap.UMAP(n_components=2).fit_transform(codes)
        rows.append((label, time.perf_counter() - started, coordinates))
    started = time.perf_counter()
    coordinates = TSNE(n_components=2, perplexity=30.0, init="pca", random_state=0).fit_transform(codes)
    rows.append(("t-SNE before (scikit-learn, 750 iterations)", time.perf_counter() - started, coordinates))
    return rows


def maps_now(codes: np.ndarray) -> list[tuple[str, float, np.ndarray]]:
    """Our maps through fresh map processes (no warm-up), so each start is a cold one: the first
    start may fill numba's cache, the second finds it. Then a warm UMAP and a t-SNE."""
    from ae.maps.service import MapService, MapSpec
    from ae.analysis.projection import TSNE_EARLY_ITERATIONS, TSNE_ITERATIONS, UMAP_EPOCHS

    os.environ["AE_WARM_UMAP"] = "0"
    rows = []

    def timed(service, label, method, seed):
        started = time.perf_counter()
        task = service.request(MapSpec("bench", 1.0, method, MAP_POINTS, seed), codes)
        task.finished.wait()
        if task.state != "done":
            raise RuntimeError(task.error or task.state)
        rows.append((label, time.perf_counter() - started, task.projection.coordinates))

    for start in ("first", "second"):
        service = MapService(Path(tempfile.mkdtemp(prefix="ae-bench-maps-")))
        try:
            timed(service, f"UMAP now, cold ({start} start of a process)", "umap", 0)
            if start == "second":
                for seed in (1, 2, 3):  # unseeded UMAP's kNN accuracy varies by a point from run to run
                    timed(service, f"UMAP now, warm ({UMAP_EPOCHS} epochs)", "umap", seed)
                iterations = TSNE_EARLY_ITERATIONS + TSNE_ITERATIONS
                timed(service, f"t-SNE now (openTSNE FFT, {iterations} iterations)", "tsne", 0)
        finally:
            service.close()
    return rows


FAMILY_CODE_SIZES = (2, 8, 32, 49)
FAMILY_EPOCHS = 10
FAMILY_CONTRACTIVE = 0.1  # the contractive rows' weight (lambda)


def family_rows(contractive_only: bool = False) -> dict[str, dict]:
    """The family table's rows: label -> the config's settings besides code size and epochs.
    Every architecture, then the contractive option on each dense one."""
    from ae.model.architectures import ARCHITECTURES

    rows = {} if contractive_only else {spec.label: dict(architecture=name) for name, spec in ARCHITECTURES.items()}
    rows.update({f"{spec.label}, contractive (\u03bb {FAMILY_CONTRACTIVE:g})": dict(architecture=name,
                                                                                 contractive=FAMILY_CONTRACTIVE)
                 for name, spec in ARCHITECTURES.items() if spec.contractive})
    return rows


def family_table(epochs: int = FAMILY_EPOCHS, code_sizes=FAMILY_CODE_SIZES, contractive_only: bool = False) -> None:
    """Test BCE of every architecture (and the contractive option of the dense ones) at a few
    code sizes after `epochs` epochs, next to PCA with as many components: the README's
    comparison of the family, with each row's training seconds."""
    from ae.model.config import TrainingConfig
    from ae.analysis.metrics import evaluate_pca

    rows = family_rows(contractive_only)
    manager = _temporary_manager()
    dataset = manager.dataset
    try:
        jobs = {(label, size): manager.request(TrainingConfig(code_size=size, epochs=epochs, **settings))
                for size in code_sizes for label, settings in rows.items()}
        while any(job.snapshot().is_active for job in jobs.values()):
            time.sleep(0.5)
    finally:
        manager.close()
    width = max(28, *(len(label) + 2 for label in rows))
    print(f"\ntest BCE after {epochs} epochs (full MNIST, batch 256)")
    print(f"{'model':<{width}}" + "".join(f"{'code ' + str(size):>11}" for size in code_sizes) + f"{'train s':>10}")
    for label in rows:
        cells, seconds = [], 0.0
        for size in code_sizes:
            snapshot = jobs[(label, size)].snapshot()
            cells.append(f"{snapshot.test_metrics.bce:>11.4f}" if snapshot.test_metrics else f"{'failed':>11}")
            seconds += snapshot.history.training_seconds
        print(f"{label:<{width}}" + "".join(cells) + f"{seconds:>10.0f}", flush=True)
    print(f"{'PCA (same components)':<{width}}" + "".join(f"{evaluate_pca(dataset, size).bce:>11.4f}" for size in code_sizes))


def noise_robustness_table(epochs: int = FAMILY_EPOCHS, code_size: int = 32) -> None:
    """What the Reconstructions page's noise chart compares, as numbers: each dense architecture
    plain, denoising (masking 0.3) and contractive, its test BCE against the clean digits as
    masking and Gaussian noise grow, and its encoder's mean squared Jacobian norm."""
    from ae.analysis.results import NOISE_CURVE_DIGITS, NOISE_LEVELS, error_against_noise
    from ae.model.architectures import ARCHITECTURES, mean_jacobian_norm
    from ae.model.config import TrainingConfig

    kinds = {"plain": {}, "denoising (masking 0.3)": dict(noise_kind="masking", noise_level=0.3),
             f"contractive (\u03bb {FAMILY_CONTRACTIVE:g})": dict(contractive=FAMILY_CONTRACTIVE)}
    rows = {f"{spec.label}, {kind}": dict(architecture=name, **settings)
            for name, spec in ARCHITECTURES.items() if spec.contractive for kind, settings in kinds.items()}
    manager = _temporary_manager()
    dataset = manager.dataset
    try:
        jobs = {label: manager.request(TrainingConfig(code_size=code_size, epochs=epochs, **settings))
                for label, settings in rows.items()}
        while any(job.snapshot().is_active for job in jobs.values()):
            time.sleep(0.5)
        width = max(len(label) for label in rows) + 2
        levels = "".join(f"{level:>7g}" for level in NOISE_LEVELS)
        print(f"\ncode size {code_size}, {epochs} epochs: test BCE against the clean digit ({NOISE_CURVE_DIGITS:,} test "
              "digits) at each noise level, and the encoder's mean ||J||_F^2")
        print(f"{'model':<{width}}{'noise':>10}{levels}{'||J||^2':>10}")
        for label, job in jobs.items():
            models = job.models()
            norm = mean_jacobian_norm(models.encoder, dataset.test_images[:NOISE_CURVE_DIGITS])
            for kind in ("masking", "gaussian"):
                errors = "".join(f"{error:>7.4f}" for error in error_against_noise(models, dataset, kind))
                print(f"{label if kind == 'masking' else '':<{width}}{kind:>10}{errors}"
                      + (f"{norm:>10.1f}" if kind == "masking" else ""), flush=True)
    finally:
        manager.close()


QUEUE_CODE_SIZES = (2, 4, 8, 12, 16, 24, 32, 64)
QUEUE_EPOCHS = 10


def _sample_service_tree(root_pid: int, cpu_by_pid: dict[int, float]) -> int:
    """Record the CPU seconds of every process under `root_pid` so far (a slot process replaced
    for its memory keeps its last figure), and return the largest one's memory."""
    import psutil

    largest = 0
    try:
        processes = psutil.Process(root_pid).children(recursive=True) + [psutil.Process(root_pid)]
    except psutil.NoSuchProcess:
        return 0
    for process in processes:
        try:
            times = process.cpu_times()
            cpu_by_pid[process.pid] = times.user + times.system
            largest = max(largest, process.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    return largest


def _train_queue(label: str, environment: dict, started: float | None = None) -> dict:
    """Train the 8 queue configs through a fresh manager under `environment`; wall time counts
    from `started` (a cluster's start-up) or from the first request."""
    from ae.model.config import TrainingConfig

    saved = {name: os.environ.get(name) for name in environment}
    for name, value in environment.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    try:
        started = started or time.perf_counter()
        startup = time.perf_counter() - started  # a cluster's start, before the first request
        manager = _temporary_manager()
        try:
            configs = [TrainingConfig(code_size=size, epochs=QUEUE_EPOCHS) for size in QUEUE_CODE_SIZES]
            jobs = [manager.request(config) for config in configs]
            largest, cpu_by_pid, local = 0, {}, not environment.get("AE_RAY_ADDRESS")
            while any(job.snapshot().is_active for job in jobs):
                if local and manager.worker_pid:
                    largest = max(largest, _sample_service_tree(manager.worker_pid, cpu_by_pid))
                time.sleep(0.25)
            seconds = time.perf_counter() - started
            if local and manager.worker_pid:
                _sample_service_tree(manager.worker_pid, cpu_by_pid)
            cpu = sum(cpu_by_pid.values()) if local else None
            snapshots = [_wait(job) for job in jobs]
        finally:
            manager.close()
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    return {"label": label, "seconds": seconds, "bce": [s.test_metrics.bce for s in snapshots],
            "where": sorted({s.where for s in snapshots}), "cpu": cpu, "largest_rss": largest,
            "training": [s.history.training_seconds for s in snapshots], "startup": startup}


def bare_fit(code_size: int) -> None:
    """One dense config's 10 epochs through the training loop alone (no job, no panel, no
    checkpoints): prints its wall and CPU seconds as JSON. Run by `machine_ceiling`."""
    import json

    import keras

    from ae.model.architectures import build_models
    from ae.model.config import TrainingConfig
    from ae.model.data import load_dataset
    from ae.training import fast_fit
    from ae.training.worker import VALIDATION_SIZE, pixel_binary_crossentropy

    dataset = load_dataset()
    config = TrainingConfig(code_size=code_size, epochs=QUEUE_EPOCHS)
    models = build_models(config.architecture, config.code_size, config.training_options())
    models.autoencoder.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=pixel_binary_crossentropy,
                               jit_compile=True)
    wall, cpu = time.perf_counter(), time.process_time()
    fast_fit.fit(models.autoencoder, dataset.train_images, config.batch_size, QUEUE_EPOCHS, [],
                 dataset.test_images[:VALIDATION_SIZE], seed=0, xla=True)
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))


def machine_ceiling(slots: int) -> tuple[float, float]:
    """What this machine allows at best: `slots` bare training loops (codes 8, 32, ...) one after
    the other (all threads each), then all at once (threads shared): their wall times."""
    import subprocess

    cpus = os.cpu_count() or 1

    def start(code: int, threads: int):
        environment = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")
        return subprocess.Popen([sys.executable, "-m", "ae.bench", "--bare-fit", str(code)], env=environment,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    codes = [(8, 32, 16, 64)[i % 4] for i in range(slots)]
    started = time.perf_counter()
    for code in codes:
        start(code, cpus).wait()
    one_by_one = time.perf_counter() - started
    started = time.perf_counter()
    for process in [start(code, max(1, cpus // slots)) for code in codes]:
        process.wait()
    return one_by_one, time.perf_counter() - started


def queue_table(slots: int | None) -> None:
    """8 distinct configs (dense, codes 2-64, 10 epochs, full MNIST) through one slot (one job at a
    time, as before slots), S local slots, and a local two-node Ray cluster, side by side."""
    from ae.training.slots import slot_plan

    plan = slot_plan()
    slots = slots or plan.slots
    print(f"\nqueue: {len(QUEUE_CODE_SIZES)} dense configs (codes {QUEUE_CODE_SIZES}), {QUEUE_EPOCHS} epochs each, "
          f"full MNIST; {os.cpu_count()} CPU(s); the machine's plan: {plan.why}", flush=True)
    # The baseline is the service as it was: one job at a time in one process, never replaced.
    runs = [_train_queue("one slot (one job at a time)", {"AE_TRAINING_SLOTS": "1", "AE_RAY_ADDRESS": None,
                                                          "AE_SLOT_RECYCLE_MB": "1000000"}),
            _train_queue(f"{slots} local slots", {"AE_TRAINING_SLOTS": str(slots), "AE_RAY_ADDRESS": None})]
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        print("(Ray is not installed: pip install -r requirements-ray.txt for the cluster row)")
    else:
        started = time.perf_counter()
        per_node = max(1, (os.cpu_count() or 2) // 2)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": per_node})
        cluster.add_node(num_cpus=per_node)
        cluster.wait_for_nodes()
        try:
            runs.append(_train_queue(f"Ray, 2 local nodes x {per_node} CPU (start-up included)",
                                     {"AE_RAY_ADDRESS": cluster.address, "AE_TRAINING_SLOTS": None}, started))
        finally:
            ray.shutdown()
            cluster.shutdown()
    base = runs[0]
    alone, together = machine_ceiling(slots)
    print(f"the machine's ceiling: {slots} bare training loops one by one {alone:.1f} s, at once {together:.1f} s: "
          f"{alone / together:.2f}x at best")
    print(f"{'how':<52}{'wall s':>8}{'jobs/min':>10}{'x one slot':>12}{'max |dBCE|':>12}  where")
    for run in runs:
        drift = max(abs(b - a) / a for a, b in zip(base["bce"], run["bce"]))
        print(f"{run['label']:<52}{run['seconds']:>8.1f}{len(QUEUE_CODE_SIZES) * 60 / run['seconds']:>10.2f}"
              f"{base['seconds'] / run['seconds']:>12.2f}{drift:>12.2%}  {', '.join(run['where'])}", flush=True)
        if run["startup"] > 0.5:
            print(f"{'  of which the cluster start-up':<52}{run['startup']:>8.1f}")
    one = runs[0]
    if one["cpu"]:
        cpu_per_job = one["cpu"] / len(QUEUE_CODE_SIZES)
        wall_per_job = one["seconds"] / len(QUEUE_CODE_SIZES)
        print(f"per job, alone: {wall_per_job:.1f} s wall, {cpu_per_job:.1f} CPU-s (service and slot, 2 threads): "
              f"{cpu_per_job / wall_per_job:.2f} cores busy; largest process {one['largest_rss'] / 2**20:,.0f} MiB")
    if runs[1]["largest_rss"]:
        print(f"with {slots} slots: largest process {runs[1]['largest_rss'] / 2**20:,.0f} MiB")


ROOM_SWEEP_SIZES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 49, 64, 96, 128, 196, 256]


def _lecture_run(fair: bool, sweep: bool) -> dict:
    """Seconds from the lecturer's Train (the article's model, 1 epoch) to its first digits and
    to its end, with a student's 16-size sweep (3 epochs each) queued first, or none."""
    from ae.analysis.code_size import Sweep
    from ae.model.config import TrainingConfig

    manager = _temporary_manager()
    try:
        _wait(manager.request(TrainingConfig(code_size=5, epochs=1, train_size=500)))  # TensorFlow loaded: not counted
        if sweep:
            base = TrainingConfig(code_size=1, epochs=3)
            who = dict(session="student", lecturer=False) if fair else dict(session=None)  # None: first come, first served
            swept = Sweep.start(manager, base, ROOM_SWEEP_SIZES, **who)
            while not any(job.snapshot().state.value == "running" for job in swept.jobs()):
                time.sleep(0.05)
        pressed = time.perf_counter()
        lecture = manager.request(TrainingConfig(epochs=1, seed=7), **(dict(session="lecturer", lecturer=True)
                                                                        if fair else dict(session=None)))
        place = None
        while lecture.snapshot().panel_epoch is None:
            place = place or lecture.snapshot().queue_position
            time.sleep(0.02)
        first_digits = time.perf_counter() - pressed
        _wait(lecture)
        done = time.perf_counter() - pressed
        if sweep:
            swept.stop()
        return {"first_digits": first_digits, "done": done, "place": place}
    finally:
        manager.close()


def room_table() -> None:
    """The lecturer's Train while a student's 16-size sweep waits: first come, first served (as
    before roles) against the fair queue (the lecturer first), with an idle server as baseline."""
    from ae.training.slots import slot_plan

    os.environ["AE_STUDENT_JOBS"] = str(len(ROOM_SWEEP_SIZES))  # the cap would refuse the sweep: a room may raise it
    print(f"\nroom: the lecturer's Train (article model, 1 epoch, full MNIST) with a student's {len(ROOM_SWEEP_SIZES)}-size "
          f"sweep (3 epochs each) queued first; {slot_plan().why}", flush=True)
    rows = [("idle server (baseline)", _lecture_run(fair=True, sweep=False)),
            ("sweep queued, first come first served (before)", _lecture_run(fair=False, sweep=True)),
            ("sweep queued, fair queue (lecturer first)", _lecture_run(fair=True, sweep=True))]
    print(f"{'how':<50}{'place':>7}{'first digits s':>16}{'done s':>9}")
    for label, row in rows:
        print(f"{label:<50}{row['place'] or '-':>7}{row['first_digits']:>16.1f}{row['done']:>9.1f}", flush=True)


MEMORY_CONFIGS = 25


def _memory_curve(environment: dict) -> list[tuple[int, float, float]]:
    """(configs done, slot process MiB, service MiB) after each of MEMORY_CONFIGS distinct
    one-epoch configs through one slot."""
    import psutil

    from ae.model.config import TrainingConfig

    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update({name: value for name, value in environment.items()})
    manager = _temporary_manager()
    curve = []
    try:
        for index in range(MEMORY_CONFIGS):
            config = TrainingConfig(architecture=("dense", "deep_dense", "conv")[index % 3], code_size=4 + 8 * index,
                                    epochs=1, train_size=20_000, seed=index)
            _wait(manager.request(config))
            time.sleep(1.0)  # a slot being replaced settles
            service = psutil.Process(manager.worker_pid)
            slot_mib = max((_slot_rss(child) for child in service.children()), default=0) / 2**20
            curve.append((index + 1, slot_mib, service.memory_info().rss / 2**20))
            print(f"  {index + 1:>3} configs: slot {slot_mib:,.0f} MiB, service {curve[-1][2]:,.0f} MiB", flush=True)
    finally:
        manager.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return curve


def _slot_rss(process) -> int:
    """A slot process's resident bytes; 0 for another child, or one that just ended (a zombie)."""
    import psutil

    try:
        return process.memory_info().rss if "ae.training.slots" in " ".join(process.cmdline()) else 0
    except psutil.Error:
        return 0


def memory_table() -> None:
    """The training processes' memory over 25 distinct configs: a slot never replaced (the
    baseline, as before) against the default, which replaces a slot past AE_SLOT_RECYCLE_MB."""
    print(f"\nmemory: {MEMORY_CONFIGS} distinct one-epoch configs (dense, deep dense, conv; codes 4-196; 20,000 "
          "digits) through one slot; resident memory after each", flush=True)
    print("never replaced (baseline):", flush=True)
    baseline = _memory_curve({"AE_TRAINING_SLOTS": "1", "AE_SLOT_RECYCLE_MB": "1000000"})
    print("replaced past 2,000 MB (the default):", flush=True)
    default = _memory_curve({"AE_TRAINING_SLOTS": "1", "AE_SLOT_RECYCLE_MB": "2000"})
    print(f"{'configs':>8}{'slot MiB, baseline':>20}{'slot MiB, default':>19}{'service MiB':>13}")
    for (count, before, _), (_, now, service) in zip(baseline, default):
        if count in (1, 5, 10, 15, 20, 25):
            print(f"{count:>8}{before:>20,.0f}{now:>19,.0f}{service:>13,.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per training measurement (first is warm-up)")
    parser.add_argument("--skip-projections", action="store_true")
    parser.add_argument("--skip-architectures", action="store_true", help="time the dense model only")
    parser.add_argument("--family", action="store_true",
                        help=f"also train every architecture at code sizes {FAMILY_CODE_SIZES} for {FAMILY_EPOCHS} epochs "
                             "and print their test BCE next to PCA's")
    parser.add_argument("--family-contractive", action="store_true",
                        help="only the family table's contractive rows (the dense models with the contractive penalty)")
    parser.add_argument("--defaults", action="store_true",
                        help="only the teaching defaults' figures: epochs to beat PCA, labels at which codes beat pixels")
    parser.add_argument("--noise-robustness", action="store_true",
                        help="only the dense models plain, denoising and contractive at code size 32: test BCE as "
                             "input noise grows, and each encoder's Jacobian norm")
    parser.add_argument("--queue", action="store_true",
                        help="only the queue: 8 configs through one slot, S local slots and a local 2-node Ray cluster")
    parser.add_argument("--slots", type=int, default=None, help="S for --queue (default: the machine's plan)")
    parser.add_argument("--memory", action="store_true",
                        help="only memory: the training processes over 25 distinct configs, a slot never replaced and as set")
    parser.add_argument("--room", action="store_true",
                        help="only the room: the lecturer's Train with a student's 16-size sweep queued, before and now")
    parser.add_argument("--bare-fit", type=int, default=None, metavar="CODE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_fit:
        bare_fit(args.bare_fit)
        return
    if args.family_contractive:
        family_table(contractive_only=True)
        return
    if args.noise_robustness:
        noise_robustness_table()
        return
    if args.defaults:
        from ae.bench_defaults import defaults_table

        defaults_table()
        return
    if args.queue:
        queue_table(args.slots)
        return
    if args.room:
        room_table()
        return
    if args.memory:
        memory_table()
        return
    from ae.model.architectures import ARCHITECTURES

    print(f"Autoencoder Explorer benchmark: code {CODE_SIZE}, batch {BATCH_SIZE}, full MNIST training set, "
          f"{os.cpu_count()} CPU(s)", flush=True)
    architectures = ["dense"] if args.skip_architectures else list(ARCHITECTURES)
    manager = _temporary_manager()
    try:
        jobs, first_panel = time_jobs(manager, args.epochs, architectures)
        floor = time_numpy_floor()
        plain = {name: time_plain_fit(args.epochs, name) for name in architectures}
        job_s, plain_s = _steady(jobs["dense"]), _steady(plain["dense"])
        print(f"\n{'path (the article model)':<44}{'s/epoch':>10}{'first epoch':>13}{'x floor':>9}")
        print(f"{'our training job (compiled k-step calls)':<44}{job_s:>10.3f}{jobs['dense'][0]:>13.2f}{job_s / floor:>9.2f}")
        print(f"{'plain model.fit, Keras defaults':<44}{plain_s:>10.3f}{plain['dense'][0]:>13.2f}{plain_s / floor:>9.2f}")
        print(f"{'numpy floor (same matrix products)':<44}{floor:>10.3f}{'':>13}{1.0:>9.2f}")
        print(f"speed-up of our job over plain fit: {plain_s / job_s:.2f}x")
        print(f"first reconstruction panel on the web side: {first_panel:.2f} s after asking (TensorFlow loaded)", flush=True)
        if len(architectures) > 1:
            print(f"\n{'architecture (code 49)':<28}{'job s/epoch':>12}{'fit s/epoch':>12}{'job first':>11}{'fit/job':>9}")
            for name in architectures:
                job_epoch, fit_epoch = _steady(jobs[name]), _steady(plain[name])
                print(f"{ARCHITECTURES[name].label:<28}{job_epoch:>12.3f}{fit_epoch:>12.3f}{jobs[name][0]:>11.2f}"
                      f"{fit_epoch / job_epoch:>9.2f}", flush=True)
        job_bce, fit_bce, codes = quality_both_ways(manager)
        print(f"\ntest BCE after {QUALITY_EPOCHS} epochs, the same config: our job {job_bce:.4f}, plain fit {fit_bce:.4f} "
              f"({(job_bce - fit_bce) / fit_bce:+.2%})", flush=True)
    finally:
        manager.close()
    if not args.skip_projections:
        labels = manager.dataset.y_test
        print(f"\n{'2-D map of 10,000 codes of that model':<50}{'seconds':>9}{'kNN accuracy':>14}")
        print(f"{'(the codes themselves, 49-D)':<50}{'':>9}{knn_accuracy(codes, labels):>14.4f}")
        for label, seconds, coordinates in maps_before(codes) + maps_now(codes):
            print(f"{label:<50}{seconds:>9.2f}{knn_accuracy(coordinates, labels):>14.4f}", flush=True)
    if args.family:
        family_table()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak memory (max RSS): {peak:,.0f} MiB; largest child process (training or maps): {children:,.0f} MiB")
    print(f"ratio job/floor: {job_s / floor:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
