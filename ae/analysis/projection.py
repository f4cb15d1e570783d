"""2-D maps of codes: the codes themselves (code size 2), PCA, UMAP or t-SNE.

PCA is instant and invertible, so a point on its map can be decoded; the instant maps never
wait for a slow one. UMAP and t-SNE are slow, so they run on a seeded subsample, one at a time
(two numba-parallel UMAP runs at once can abort the process, umap #665), in a process of their
own (`ae.maps.service`), reporting progress to a callback that may stop them by raising
`MapStopped`. Every result says which points and which settings made it. UMAP is imported
lazily: importing it compiles numba code.

Speed choices, measured on 10,000 codes of the article's model (`python -m ae.bench`):
- UMAP gets its neighbours from scikit-learn's exact search, which skips pynndescent's numba
  compilation (most of a cold start), and runs UMAP_EPOCHS optimisation epochs rather than
  umap-learn's 500 at this size.
- t-SNE is openTSNE's FFT-accelerated method with TSNE_ITERATIONS iterations after the early
  exaggeration phase, rather than scikit-learn's Barnes-Hut with 750 in all.
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import PCA

METHODS = ("codes", "pca", "umap", "tsne")
METHOD_LABELS = {"codes": "The codes themselves", "pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
SLOW_METHODS = ("umap", "tsne")
DEFAULT_MAX_POINTS = 5_000
UMAP_EPOCHS = 200  # umap-learn runs 500 up to 10,000 points and 200 above: we always run 200
TSNE_EARLY_ITERATIONS = 250  # openTSNE's default early exaggeration phase
TSNE_ITERATIONS = 250  # after it; openTSNE's default is 500
TSNE_CALLBACK_EVERY = 10  # iterations between progress reports (each one also computes the KL error)


class MapStopped(Exception):
    """Raised by a progress callback to stop a slow map."""


# One slow map at a time per process (two numba-parallel UMAP runs can abort it). Not a cache, and
# only the slow methods take it: the instant maps the pages compute in the web process (codes, PCA)
# never wait behind a UMAP.
_projection_lock = threading.Lock()


@dataclass(frozen=True)
class Projection:
    """2-D coordinates of `indices` (rows of the codes given), and how they were made."""

    coordinates: np.ndarray
    indices: np.ndarray
    method: str
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    pca: PCA | None = None  # set for method 'pca', so a map position can be mapped back to a code

    def to_code(self, points: np.ndarray) -> np.ndarray:
        """Map positions back to codes: exact for 'codes', the PCA inverse for 'pca'."""
        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if self.method == "codes":
            return points.astype(np.float32)
        if self.method == "pca" and self.pca is not None:
            return self.pca.inverse_transform(points).astype(np.float32)
        if self.method == "pca":  # a 1-unit code is drawn on the x axis as is
            return points[:, :1].astype(np.float32)
        raise ValueError(f"{METHOD_LABELS[self.method]} maps cannot be decoded back into codes.")

    @property
    def invertible(self) -> bool:
        return self.method in ("codes", "pca")


def subsample(count: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most `max_points` of `count` rows, the same for the same seed."""
    if max_points is None or max_points >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=max_points, replace=False))


def available_methods(code_size: int) -> tuple[str, ...]:
    return METHODS if code_size == 2 else tuple(m for m in METHODS if m != "codes")


def project(codes: np.ndarray, method: str = "pca", max_points: int | None = None, seed: int = 0, progress=None,
            **options) -> Projection:
    """2-D coordinates for codes (N, code_size).

    `max_points` defaults to all points for 'codes' and 'pca' and to 5,000 for the slow
    methods. UMAP runs unseeded by default: a seeded UMAP is forced onto one thread and
    is about 10x slower here; pass `umap_seeded=True` for a reproducible layout.
    `progress(fraction, text)` hears from the slow methods as they go, and may raise
    `MapStopped` to stop them.
    """
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"Codes must be a non-empty 2-D array (points x code size); got shape {codes.shape}.")
    if method not in METHODS:
        raise ValueError(f"Unknown projection '{method}'; choose one of: {', '.join(METHODS)}.")
    if method == "codes" and codes.shape[1] != 2:
        raise ValueError(f"The codes themselves are a 2-D map only when the code size is 2, not {codes.shape[1]}.")
    if max_points is None and method in SLOW_METHODS:
        max_points = DEFAULT_MAX_POINTS
    indices = subsample(len(codes), max_points, seed)
    chosen = codes[indices]
    started = time.perf_counter()
    if method in SLOW_METHODS:
        options["progress"] = progress or (lambda fraction, text: None)
        with _projection_lock:
            coordinates, settings, pca = _RUNNERS[method](chosen, seed, **options)
    else:
        coordinates, settings, pca = _RUNNERS[method](chosen, seed, **options)
    settings = {"points": len(indices), "of": len(codes), "seed": seed, **settings}
    return Projection(coordinates.astype(np.float32), indices, method, settings, time.perf_counter() - started, pca)


def _codes(points, seed):
    return points.copy(), {}, None


def _pca(points, seed):
    if points.shape[1] == 1 or len(points) < 2:
        # A single code unit: show it against zero so the map still draws.
        return np.column_stack([points[:, 0], np.zeros(len(points))]), {"note": "1-D code shown on the x axis"}, None
    with warnings.catch_warnings():  # all-equal codes have no variance: 0/0 in the ratio
        warnings.simplefilter("ignore", RuntimeWarning)
        pca = PCA(n_components=2).fit(points)
    explained = float(np.nan_to_num(pca.explained_variance_ratio_).sum())
    return pca.transform(points), {"explained_variance": round(explained, 4)}, pca


def _umap(points, seed, progress, umap_seeded: bool = False, n_neighbors: int = 15, min_dist: float = 0.1):
    import umap  # lazy: compiles numba code on first import
    from sklearn.neighbors import NearestNeighbors

    n_neighbors = int(min(n_neighbors, max(2, len(points) - 1)))
    progress(0.0, "finding each code's nearest neighbours")
    distances, indices = NearestNeighbors(n_neighbors=n_neighbors).fit(points).kneighbors(points)
    init = "pca" if points.shape[1] >= 2 else "spectral"
    progress(0.1, "building the neighbour graph; the layout starts from " + ("PCA" if init == "pca" else "a spectral layout"))
    reducer = umap.UMAP(
        n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, n_epochs=UMAP_EPOCHS,
        random_state=seed if umap_seeded else None, precomputed_knn=(indices, distances),
        init=init,
        tqdm_kwds={"disable": False, "file": _EpochReporter(progress, UMAP_EPOCHS), "bar_format": "{n}",
                   "mininterval": 0.2},
    )
    with warnings.catch_warnings():  # "transform() is unavailable with precomputed_knn": never used
        warnings.simplefilter("ignore")
        coordinates = reducer.fit_transform(points)
    return coordinates, {"n_neighbors": n_neighbors, "min_dist": min_dist, "seeded": umap_seeded,
                         "epochs": UMAP_EPOCHS}, None


class _EpochReporter:
    """A file for umap-learn's tqdm bar (format "{n}"): each write is the epoch count so far."""

    def __init__(self, progress, epochs: int):
        self.progress, self.epochs = progress, epochs

    def write(self, text: str) -> None:
        text = text.strip()
        if text.isdigit():
            done = int(text)
            self.progress(0.15 + 0.85 * done / self.epochs, f"optimising the layout: epoch {done} of {self.epochs}")

    def flush(self) -> None:
        pass


def _tsne(points, seed, progress, perplexity: float = 30.0):
    import openTSNE

    perplexity = float(min(perplexity, max(1.0, (len(points) - 1) / 3)))
    total = TSNE_EARLY_ITERATIONS + TSNE_ITERATIONS
    counted = {"before": 0, "last": 0}  # openTSNE counts each phase's iterations from 0

    def report(iteration, error, embedding):
        if iteration < counted["last"]:
            counted["before"] += counted["last"]
        counted["last"] = iteration
        done = counted["before"] + iteration
        progress(0.1 + 0.9 * done / total, f"iteration {done} of {total}, KL divergence {error:.2f}")

    progress(0.0, "computing the codes' affinities")
    tsne = openTSNE.TSNE(
        perplexity=perplexity, early_exaggeration_iter=TSNE_EARLY_ITERATIONS, n_iter=TSNE_ITERATIONS,
        negative_gradient_method="fft", initialization="pca" if points.shape[1] >= 2 else "random",
        random_state=seed, n_jobs=max(1, os.cpu_count() or 1), callbacks=report, callbacks_every_iters=TSNE_CALLBACK_EVERY,
    )
    coordinates = np.asarray(tsne.fit(points.astype(np.float64)))
    return coordinates, {"perplexity": perplexity, "iterations": total}, None


_RUNNERS = {"codes": _codes, "pca": _pca, "umap": _umap, "tsne": _tsne}


def warm_up_umap() -> None:
    """Import umap and run a tiny fit, so the first real UMAP finds its code compiled."""
    project(np.random.default_rng(0).normal(size=(300, 4)), "umap")
