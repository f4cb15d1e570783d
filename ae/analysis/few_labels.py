"""Few-labels probe: does a code help a classifier when labelled examples are scarce?

A logistic regression is trained on 10, 30, ... labelled training digits (and on all of
them), using (a) the autoencoder's codes, (b) PCA codes of the same size, (c) raw pixels,
and scored on the whole test set, over a few random draws of the labelled subset. The
unlabelled training digits are fair game for the features (the autoencoder and PCA were
fitted on them, the code scaler too); labels come only from the drawn subset.

Runs under a one-thread BLAS: on this kind of machine the small solves are 20x faster
single-threaded. Raw-pixel and PCA results do not depend on the model, so they are
computed once per process and shared.

Bounded and shared, so one visitor cannot take the web process: `probe_model` keeps whole
results in an LRU per (model, saved_at, settings, seed); identical requests at the same time
are computed once; at most PROBES_AT_ONCE probes compute at once in the process, up to
PROBES_WAITING more wait their turn in order, and any further one is refused in a sentence;
seeds run from 0 to MAX_SEED.
"""
from __future__ import annotations

import csv
import io
import threading
import time
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ae.lru import LRU
from ae.model.data import Dataset
from ae.analysis.metrics import fit_pca

LABEL_COUNTS = (10, 30, 100, 300, 1000, None)  # None: every labelled training digit
DEFAULT_DRAWS = 3
MAX_ITER = 100
FEATURES = ("autoencoder", "pca", "pixels")
FEATURE_LABELS = {"autoencoder": "autoencoder codes", "pca": "PCA codes (same size)", "pixels": "raw pixels"}
MAX_SEED = 9  # ten different draws of the labelled digits show the spread; more only multiply the work
MAX_DRAWS = 5
PROBES_AT_ONCE = 1  # probes computing at once in the process: each holds a core for up to ~10 s
PROBES_WAITING = 4  # requests queued for a turn beyond those; one more is refused
PROBES_KEPT = 32  # whole results (three kinds of feature), least recently used forgotten first
BASELINES_KEPT = 64  # shared PCA and raw-pixel results, per code size and settings
WAIT_REPORT_SECONDS = 1.0  # a waiting request tells its page where it stands this often


class ProbeRefused(ValueError):
    """Why a probe was not run, in one sentence for the page."""


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracies of one kind of feature: one tuple of draws per labelled-set size."""

    feature: str
    dimensions: int
    label_counts: tuple[int, ...]
    accuracies: tuple[tuple[float, ...], ...]
    seconds: float

    def mean(self) -> np.ndarray:
        return np.array([np.mean(draws) for draws in self.accuracies])

    def spread(self) -> np.ndarray:
        """Standard deviation over the draws (0 when there is only one)."""
        return np.array([np.std(draws) for draws in self.accuracies])

    def cells(self) -> list[str]:
        """Each count's accuracy for a table: "91.2% ± 0.4%" over several draws, "97.6%" alone
        where there was one draw (all the training digits are always the same set): no ± 0.0%."""
        return [f"{np.mean(draws):.1%}" + (f" ± {np.std(draws):.1%}" if len(draws) > 1 else "")
                for draws in self.accuracies]


def balanced_subset(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices with every class as equally represented as possible."""
    classes = np.unique(labels)
    per_class, extra = divmod(count, len(classes))
    chosen = [rng.choice(np.flatnonzero(labels == c), size=min(per_class, int((labels == c).sum())), replace=False) for c in classes]
    chosen = np.concatenate(chosen) if chosen else np.array([], dtype=int)
    if extra:
        rest = np.setdiff1d(np.arange(len(labels)), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size=extra, replace=False)])
    return np.sort(chosen)


def probe_features(train_x, train_y, test_x, test_y, feature: str = "features",
                   label_counts=LABEL_COUNTS, draws: int = DEFAULT_DRAWS, seed: int = 0) -> ProbeResult:
    """Accuracy of logistic regression on each labelled-set size, `draws` random subsets each."""
    started = time.perf_counter()
    counts = tuple(len(train_y) if c is None or c >= len(train_y) else int(c) for c in label_counts)
    rng = np.random.default_rng(seed)
    accuracies = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for count in counts:
            repeats = 1 if count == len(train_y) else draws  # every draw of "all" is the same set
            scores = []
            for _ in range(repeats):
                chosen = balanced_subset(train_y, count, rng)
                if len(np.unique(train_y[chosen])) < 2:
                    scores.append(float(np.mean(test_y == train_y[chosen][0])))
                    continue
                classifier = LogisticRegression(max_iter=MAX_ITER).fit(train_x[chosen], train_y[chosen])
                scores.append(float(classifier.score(test_x, test_y)))
            accuracies.append(tuple(scores))
    return ProbeResult(feature, int(train_x.shape[1]), counts, tuple(accuracies), time.perf_counter() - started)


def _standardized(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes come in arbitrary scales (relu units, PCA variances); put them on one footing."""
    scaler = StandardScaler().fit(train)
    return scaler.transform(train).astype(np.float32), scaler.transform(test).astype(np.float32)


class Turns:
    """At most `at_once` holders at a time; up to `max_waiting` more wait, first come first served,
    hearing `on_wait(ahead)` every WAIT_REPORT_SECONDS; one more is refused."""

    def __init__(self, at_once: int, max_waiting: int):
        self.at_once, self.max_waiting = at_once, max_waiting
        self._changed = threading.Condition()
        self._running = 0
        self._queue: deque[object] = deque()

    @contextmanager
    def turn(self, on_wait: Callable[[int], None] | None = None):
        me = object()
        with self._changed:
            if self._running >= self.at_once and len(self._queue) >= self.max_waiting:
                raise ProbeRefused(f"The server is busy with other visitors' probes ({self._running} running, "
                                   f"{len(self._queue)} waiting); try again in a minute.")
            self._queue.append(me)
        try:
            while True:
                with self._changed:
                    if self._queue[0] is me and self._running < self.at_once:
                        self._queue.popleft()
                        self._running += 1
                        break
                    ahead = self._running + self._queue.index(me)
                if on_wait is not None:
                    on_wait(ahead)  # may raise (a page rerun): the finally below gives up the place
                with self._changed:
                    if not (self._queue[0] is me and self._running < self.at_once):
                        self._changed.wait(WAIT_REPORT_SECONDS)
        finally:
            with self._changed:
                if me in self._queue:
                    self._queue.remove(me)
                    self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def counts(self) -> tuple[int, int]:
        """(running, waiting) now."""
        with self._changed:
            return self._running, len(self._queue)


_turns = Turns(PROBES_AT_ONCE, PROBES_WAITING)
_probes: LRU[tuple, dict[str, ProbeResult]] = LRU(PROBES_KEPT)
_baselines: LRU[tuple, ProbeResult] = LRU(BASELINES_KEPT)


def _probes_word(count: int) -> str:
    return f"{count} probe" if count == 1 else f"{count} probes"


def settings_problem(draws: int, seed: int) -> str | None:
    """One sentence if the draws or the seed are outside what a visitor may ask for, else None."""
    if not (isinstance(draws, (int, np.integer)) and 1 <= draws <= MAX_DRAWS):
        return f"Draws must be a whole number from 1 to {MAX_DRAWS}; got {draws!r}."
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed <= MAX_SEED):
        return f"Seed must be a whole number from 0 to {MAX_SEED}; got {seed!r}."
    return None


def probe_model(key: str, saved_at: float, dataset: Dataset, encode: Callable[[np.ndarray], np.ndarray],
                draws: int = DEFAULT_DRAWS, seed: int = 0, label_counts=LABEL_COUNTS,
                progress: Callable[[str], None] | None = None) -> dict[str, ProbeResult]:
    """`run_probe` for one saved model (`encode(images)` gives its codes), bounded and shared:
    cached per model, settings and seed, waiting for a turn, or ProbeRefused in a sentence.
    `progress(text)` hears what it is doing, waiting included."""
    problem = settings_problem(draws, seed)
    if problem:
        raise ProbeRefused(problem)
    say = progress or (lambda text: None)

    def compute() -> dict[str, ProbeResult]:
        with _turns.turn(lambda ahead: say(f"Waiting for a turn: the server runs {_probes_word(PROBES_AT_ONCE)} at a time, "
                                           f"and {_probes_word(ahead)} {'is' if ahead == 1 else 'are'} ahead of yours.")):
            say("Reading the codes of the training and test digits.")
            train_codes, test_codes = encode(dataset.train_images), encode(dataset.test_images)
            return run_probe(dataset, train_codes, test_codes, label_counts, draws, seed, progress=say)

    return _probes.get_or_build((key, saved_at, id(dataset), tuple(label_counts), draws, seed), compute,
                                waiting=lambda: say("Someone asked for the same probe a moment ago: waiting for its result."))


def run_probe(dataset: Dataset, train_codes: np.ndarray, test_codes: np.ndarray, label_counts=LABEL_COUNTS,
              draws: int = DEFAULT_DRAWS, seed: int = 0, progress: Callable[[str], None] | None = None) -> dict[str, ProbeResult]:
    """All three probes for one model's codes (all training digits' codes, all test digits');
    the PCA and raw-pixel ones are shared with every model through a bounded cache."""
    say = progress or (lambda text: None)
    code_size = train_codes.shape[1]
    settings = (tuple(label_counts), draws, seed)
    flat_train = dataset.train_images.reshape(len(dataset.train_images), -1)
    flat_test = dataset.test_images.reshape(len(dataset.test_images), -1)

    def pca_probe() -> ProbeResult:
        say(f"Training logistic regressions on {code_size}-D PCA codes (shared by every model of this code size).")
        baseline = fit_pca(dataset, code_size)
        train, test = _standardized(baseline.encode(dataset.train_images), baseline.encode(dataset.test_images))
        return probe_features(train, dataset.y_train, test, dataset.y_test, "pca", label_counts, draws, seed)

    def pixel_probe() -> ProbeResult:
        say("Training logistic regressions on the raw pixels (about 10 s, once for these settings, then shared).")
        return probe_features(flat_train, dataset.y_train, flat_test, dataset.y_test, "pixels", label_counts, draws, seed)

    say(f"Training logistic regressions on the autoencoder's {code_size}-D codes.")
    train, test = _standardized(train_codes, test_codes)
    return {
        "autoencoder": probe_features(train, dataset.y_train, test, dataset.y_test, "autoencoder", label_counts, draws, seed),
        "pca": _baselines.get_or_build((id(dataset), "pca", code_size, *settings), pca_probe),
        "pixels": _baselines.get_or_build((id(dataset), "pixels", *settings), pixel_probe),
    }


MAX_COMPARED = 3  # other kinds' codes on the chart at once: each is one more probe in the queue above


# Whose codes beat raw pixels with few labels, measured on the full MNIST (`python -m ae.bench
# --defaults`, README "Teaching defaults"): the convolutional codes clearly, the deep dense ones
# barely, the article's dense, the VAE's, the sparse and the denoising ones not. Compared kinds
# are offered in this order, so the ones that show the claim are on the chart by default.
KIND_ORDER = ("conv", "deep_dense", "dense", "vae")
MEASURED_NOTE = (
    "Measured on the full MNIST (`python -m ae.bench --defaults`): the convolutional model's codes beat the raw "
    "pixels when labels are scarce (code 8, 10 epochs: 54.8% against 45.1% with 10 labelled digits, up to 1,000 "
    "labels; code 32: at every count), while the article's dense model's codes did not beat them at any count "
    "(code 8, 32 or 49, after 3 to 20 epochs), nor did the VAE's, the sparse or the denoising dense model's.")


def kind_of(config) -> str:
    """What a model is, for comparing codes: its architecture and training options."""
    from ae.model.architectures import ARCHITECTURES

    return ARCHITECTURES[config.architecture].label + config.variants


def one_per_kind(jobs, leave_out: str | None = None) -> list:
    """The most-trained finished model of each kind (the newest of equals), leaving out
    `leave_out`'s kind (the model already on the chart); the kinds whose codes measured best with
    few labels first (KIND_ORDER), plain before options. `jobs` are job handles newest first, as
    `JobManager.trained_jobs()` gives them."""
    snapshots = {job.key: job.snapshot() for job in jobs}
    shown = kind_of(snapshots[leave_out].config) if leave_out in snapshots else None
    best: dict[str, object] = {}
    for job in jobs:
        snapshot = snapshots[job.key]
        kind = kind_of(snapshot.config)
        if kind == shown or snapshot.state.value != "finished":
            continue
        if kind not in best or snapshot.history.epochs_done > snapshots[best[kind].key].history.epochs_done + 1e-6:
            best[kind] = job
    order = {name: index for index, name in enumerate(KIND_ORDER)}
    return sorted(best.values(), key=lambda job: (order.get(snapshots[job.key].config.architecture, len(order)),
                                                  bool(snapshots[job.key].config.variants)))


def counts_where_codes_beat_pixels(codes: ProbeResult, pixels: ProbeResult) -> list[int]:
    """The labelled-set sizes at which these codes' mean test accuracy is above the raw pixels'."""
    return [count for count, code, pixel in zip(codes.label_counts, codes.mean(), pixels.mean()) if code > pixel]


def probe_csv(results: dict[str, ProbeResult], labels: dict[str, str] | None = None) -> str:
    """One row per feature kind and labelled-set size: mean, spread and every draw. `labels`
    names the features (a compared model's kind rather than its key)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["features", "dimensions", "labelled_digits", "mean_accuracy", "std_accuracy", "draws"])
    for name, result in results.items():
        feature = (labels or {}).get(name, name)
        for count, draws, mean, spread in zip(result.label_counts, result.accuracies, result.mean(), result.spread()):
            writer.writerow([feature, result.dimensions, count, f"{mean:.4f}", f"{spread:.4f}", " ".join(f"{a:.4f}" for a in draws)])
    return buffer.getvalue()
