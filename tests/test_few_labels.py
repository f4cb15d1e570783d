"""ae.analysis.few_labels: the few-labels logistic-regression probe on real MNIST slices."""
from __future__ import annotations

import csv
import json
import io
import threading

import numpy as np
import pytest

from ae.model.data import load_dataset
from ae.analysis.metrics import fit_pca
from ae.analysis import few_labels
from ae.analysis.few_labels import balanced_subset, probe_csv, probe_features, run_probe


@pytest.fixture(scope="module")
def data(small_mnist_path):
    dataset = load_dataset(small_mnist_path)
    flat = lambda images: images.reshape(len(images), -1)  # noqa: E731
    return dataset, flat(dataset.train_images), flat(dataset.test_images)


def test_balanced_subset_has_every_class_equally():
    labels = np.repeat(np.arange(10), 50)
    chosen = balanced_subset(labels, 30, np.random.default_rng(0))
    assert len(chosen) == len(np.unique(chosen)) == 30
    assert np.bincount(labels[chosen], minlength=10).tolist() == [3] * 10
    odd = balanced_subset(labels, 13, np.random.default_rng(0))
    assert len(odd) == 13 and np.bincount(labels[odd], minlength=10).min() == 1


def test_probe_shapes_counts_and_single_fit_for_all(data):
    dataset, train, test = data
    result = probe_features(train, dataset.y_train, test, dataset.y_test, "pixels", (10, 100, None), draws=3, seed=0)
    assert result.label_counts == (10, 100, len(dataset.y_train))
    assert [len(draws) for draws in result.accuracies] == [3, 3, 1]
    assert result.dimensions == 784
    assert result.mean().shape == result.spread().shape == (3,)
    assert result.spread()[-1] == 0
    cells = result.cells()  # the table: a spread over the draws, none for the one fit on all the digits
    assert " ± " in cells[0] and " ± " in cells[1]
    assert cells[-1] == f"{result.mean()[-1]:.1%}" and "±" not in cells[-1]


def test_raw_pixels_beat_chance_by_a_wide_margin(data):
    dataset, train, test = data
    result = probe_features(train, dataset.y_train, test, dataset.y_test, "pixels", (300,), draws=2, seed=1)
    assert result.mean()[0] > 0.7  # chance is 0.1


def test_more_labels_help(data):
    dataset, train, test = data
    result = probe_features(train, dataset.y_train, test, dataset.y_test, "pixels", (10, 1000), draws=3, seed=2)
    assert result.mean()[1] > result.mean()[0] + 0.15


def test_seeded_draws_are_reproducible(data):
    dataset, train, test = data
    run = lambda seed: probe_features(train, dataset.y_train, test, dataset.y_test, "pixels", (10, 30), 3, seed)  # noqa: E731
    assert run(5).accuracies == run(5).accuracies
    assert run(5).accuracies != run(6).accuracies


def test_run_probe_compares_three_feature_kinds_and_shares_baselines(data):
    dataset, _, _ = data
    pca = fit_pca(dataset, 8)  # stands in for a model's 8-unit codes: real features, different scale
    train_codes, test_codes = pca.encode(dataset.train_images) * 40, pca.encode(dataset.test_images) * 40
    counts = (10, 100)
    first = run_probe(dataset, train_codes, test_codes, counts, draws=2, seed=0)
    assert set(first) == {"autoencoder", "pca", "pixels"}
    assert [first[k].dimensions for k in ("autoencoder", "pca", "pixels")] == [8, 8, 784]
    # Standardized codes: scaling the codes by 40 changes nothing, so they equal the PCA probe.
    np.testing.assert_allclose(first["autoencoder"].accuracies, first["pca"].accuracies, atol=0.02)
    second = run_probe(dataset, train_codes, test_codes, counts, draws=2, seed=0)
    assert second["pixels"] is first["pixels"] and second["pca"] is first["pca"]
    rows = list(csv.DictReader(io.StringIO(probe_csv(first))))
    assert len(rows) == 6 and {r["features"] for r in rows} == {"autoencoder", "pca", "pixels"}
    assert all(0 <= float(r["mean_accuracy"]) <= 1 for r in rows)
    named = list(csv.DictReader(io.StringIO(probe_csv(first, {"autoencoder": "convolutional codes (8-D)"}))))
    assert {r["features"] for r in named} == {"convolutional codes (8-D)", "pca", "pixels"}  # a kind, not a job key


# ---- bounded and shared: what one visitor can make the web process do ----------------------
COUNTS = (10, 30)  # a few small fits: the bounds, not the accuracies, are under test here


def _pca_encoder(dataset, size: int = 4):
    """A real 4-unit encoder standing in for a model's: PCA codes."""
    return fit_pca(dataset, size).encode


def _is_sentence(text: str) -> bool:
    return text[:1].isupper() and text.endswith(".") and "Traceback" not in text


def test_probe_results_are_kept_in_a_bounded_cache(data):
    dataset, _, _ = data
    encode = _pca_encoder(dataset)
    first = few_labels.probe_model("bounded-0", 1.0, dataset, encode, draws=1, seed=0, label_counts=COUNTS)
    assert few_labels.probe_model("bounded-0", 1.0, dataset, encode, draws=1, seed=0, label_counts=COUNTS) is first
    for number in range(1, few_labels.PROBES_KEPT + 1):  # one more model than the cache keeps
        few_labels.probe_model(f"bounded-{number}", 1.0, dataset, encode, draws=1, seed=0, label_counts=COUNTS)
    assert len(few_labels._probes) == few_labels.PROBES_KEPT
    assert few_labels.probe_model("bounded-0", 1.0, dataset, encode, draws=1, seed=0, label_counts=COUNTS) is not first
    assert len(few_labels._baselines) <= few_labels.BASELINES_KEPT


@pytest.mark.parametrize("draws, seed, message", [
    (1, few_labels.MAX_SEED + 1, f"Seed must be a whole number from 0 to {few_labels.MAX_SEED}; got {few_labels.MAX_SEED + 1}."),
    (1, -1, f"Seed must be a whole number from 0 to {few_labels.MAX_SEED}; got -1."),
    (few_labels.MAX_DRAWS + 1, 0, f"Draws must be a whole number from 1 to {few_labels.MAX_DRAWS}; got {few_labels.MAX_DRAWS + 1}."),
])
def test_seeds_and_draws_outside_the_small_range_are_refused_in_a_sentence(data, draws, seed, message):
    dataset, _, _ = data
    with pytest.raises(few_labels.ProbeRefused) as refused:
        few_labels.probe_model("range", 1.0, dataset, _pca_encoder(dataset), draws=draws, seed=seed, label_counts=COUNTS)
    assert str(refused.value) == message and _is_sentence(message)


class HeldEncoder:
    """A real encoder that holds on until released, and counts the calls and how many ran at once."""

    def __init__(self, encode):
        self.encode, self.entered, self.release = encode, threading.Event(), threading.Event()
        self.calls = self.running = self.most_at_once = 0
        self.lock = threading.Lock()

    def __call__(self, images):
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.entered.set()
        assert self.release.wait(60), "never released"
        with self.lock:
            self.running -= 1
        return self.encode(images)


def _in_thread(target, results: dict, name) -> threading.Thread:
    def run():
        try:
            results[name] = target()
        except BaseException as error:  # looked at by the test
            results[name] = error
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_identical_requests_at_the_same_time_are_computed_once(data):
    dataset, _, _ = data
    encoder, results, heard = HeldEncoder(_pca_encoder(dataset)), {}, threading.Event()
    ask = lambda progress=None: few_labels.probe_model("same", 2.0, dataset, encoder, 1, 1, COUNTS, progress)  # noqa: E731
    first = _in_thread(ask, results, "first")
    assert encoder.entered.wait(60)
    second = _in_thread(lambda: ask(lambda text: "same probe" in text and heard.set()), results, "second")
    assert heard.wait(60), "the second request did not say it waits for the first's result"
    encoder.release.set()
    for thread in (first, second):
        thread.join(60)
    assert encoder.calls == 2 and results["first"] is results["second"]  # one probe: training codes, test codes


def test_one_probe_computes_at_a_time_others_wait_their_turn_and_one_more_is_refused(data):
    dataset, _, _ = data
    assert few_labels._turns.counts() == (0, 0)
    encoder, results = HeldEncoder(_pca_encoder(dataset)), {}
    waiting = [threading.Event() for _ in range(few_labels.PROBES_WAITING)]
    heard: list[str] = []

    def ask(number: int, progress=None):
        return lambda: few_labels.probe_model(f"turns-{number}", 3.0, dataset, encoder, 1, 0, COUNTS, progress)

    def told(number: int):
        def progress(text: str) -> None:
            if text.startswith("Waiting for a turn"):
                heard.append(text)
                waiting[number - 1].set()
        return progress

    threads = [_in_thread(ask(0), results, 0)]
    assert encoder.entered.wait(60)
    for number in range(1, few_labels.PROBES_WAITING + 1):
        threads.append(_in_thread(ask(number, told(number)), results, number))
        assert waiting[number - 1].wait(60)  # each waits its turn, in order, and says so
    assert few_labels._turns.counts() == (few_labels.PROBES_AT_ONCE, few_labels.PROBES_WAITING)
    with pytest.raises(few_labels.ProbeRefused) as refused:
        ask(99)()
    assert "busy with other visitors' probes" in str(refused.value) and _is_sentence(str(refused.value))
    assert all(_is_sentence(text) for text in heard)
    encoder.release.set()
    for thread in threads:
        thread.join(60)
    assert encoder.most_at_once == few_labels.PROBES_AT_ONCE
    assert all(set(results[number]) == {"autoencoder", "pca", "pixels"} for number in range(few_labels.PROBES_WAITING + 1))
    assert few_labels._turns.counts() == (0, 0)


def test_the_page_says_in_words_when_the_server_is_busy_or_a_seed_is_out_of_range(trained_env, dataset):
    from tests.test_pages import assert_clean, open_page, texts

    encoder, results = HeldEncoder(_pca_encoder(dataset)), {}
    waiting = [threading.Event() for _ in range(few_labels.PROBES_WAITING)]

    def ask(number: int):
        progress = (lambda text: text.startswith("Waiting") and waiting[number - 1].set()) if number else None
        return lambda: few_labels.probe_model(f"page-{number}", 4.0, dataset, encoder, 1, 0, COUNTS, progress)

    threads = [_in_thread(ask(0), results, 0)]
    assert encoder.entered.wait(60)
    for number in range(1, few_labels.PROBES_WAITING + 1):
        threads.append(_in_thread(ask(number), results, number))
        assert waiting[number - 1].wait(60)
    try:
        app = open_page("pages/few_labels.py")  # every turn and place in the queue taken
        assert_clean(app)
        assert any("The server is busy with other visitors' probes" in w.value and w.value.endswith("try again in a minute.")
                   for w in app.warning), texts(app)
        assert not app.get("plotly_chart")
    finally:
        encoder.release.set()
        for thread in threads:
            thread.join(60)
    app.run()  # its turn now: the probe runs and is drawn
    assert_clean(app)
    assert len(app.get("plotly_chart")) == 1 and not app.warning
    app.number_input(key="probe_seed").set_value(few_labels.MAX_SEED + 1).run()
    assert any(f"Seed must be a whole number from 0 to {few_labels.MAX_SEED}; got {few_labels.MAX_SEED + 1}." in e.value
               for e in app.error)


# ---- every trained kind's codes ------------------------------------------------------------
def test_one_model_per_kind_the_most_trained_leaving_out_the_picked_kind(small_mnist_path, trained_cache):
    from ae.jobs.manager import get_manager

    manager = get_manager(load_dataset(small_mnist_path), trained_cache)
    jobs = manager.trained_jobs()
    by_size = {(j.snapshot().config.architecture, j.snapshot().config.code_size, j.snapshot().config.variants): j for j in jobs}
    dense_2 = by_size[("dense", 2, "")]
    kinds = {few_labels.kind_of(job.snapshot().config): job for job in few_labels.one_per_kind(jobs, leave_out=dense_2.key)}
    # The kinds whose codes measured best with few labels come first, so they are on the chart by default.
    assert list(kinds) == ["Convolutional", "Deep dense, sparse", "Dense (article), denoising", "Variational (VAE)"]
    assert len({few_labels.kind_of(job.snapshot().config) for job in jobs}) == len(kinds) + 1  # every kind but the picked one
    conv = kinds["Convolutional"]
    dense = [job for job in few_labels.one_per_kind(jobs, leave_out=conv.key)
             if few_labels.kind_of(job.snapshot().config) == "Dense (article)"]
    assert dense == [dense_2]  # of the plain dense models (2, 2 and 3 epochs), the most trained


def test_counts_where_codes_beat_pixels_come_from_the_means():
    counts = (10, 30, 100, 1000)
    codes = few_labels.ProbeResult("autoencoder", 8, counts, ((0.5, 0.6), (0.7, 0.7), (0.80, 0.82), (0.85,)), 0.0)
    pixels = few_labels.ProbeResult("pixels", 784, counts, ((0.4, 0.5), (0.72, 0.7), (0.80, 0.80), (0.9,)), 0.0)
    assert few_labels.counts_where_codes_beat_pixels(codes, pixels) == [10, 100]
    assert few_labels.counts_where_codes_beat_pixels(pixels, pixels) == []


def test_few_labels_page_draws_every_trained_kinds_codes(trained_env):
    from tests.test_pages import assert_clean, open_page, texts

    app = open_page("pages/few_labels.py")
    compare = app.multiselect(key="probe_compare")
    assert len(compare.value) == few_labels.MAX_COMPARED < len(compare.options)  # 4 other kinds, 3 at once
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    names = [trace["name"] for trace in spec["data"]]
    assert names[1:3] == ["PCA codes (same size)", "raw pixels"]
    assert names[0] == "Dense (article) codes (2-D), picked"
    assert len(names) == 3 + few_labels.MAX_COMPARED and all(name.endswith("-D)") for name in names[3:])
    assert names[3] == "Convolutional codes (8-D)"
    columns = list(app.dataframe[0].value.columns)
    assert len(columns) == 1 + len(names) and columns[1] == names[0] and columns[4:] == names[3:]  # a column per curve
    said = texts(app)
    assert sum(name in said for name in names[3:]) == few_labels.MAX_COMPARED  # a sentence each, from the numbers
    compare.set_value([]).run()
    assert_clean(app)
    names = [trace["name"] for trace in json.loads(app.get("plotly_chart")[0].proto.spec)["data"]]
    assert names == ["autoencoder codes", "PCA codes (same size)", "raw pixels"]
