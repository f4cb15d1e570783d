"""The figure builders' charts drawn by plotly.js in Chromium, at the sizes a 1280x720 projector
gives them, as they are and in presentation mode: digit labels never overlap each other or
the star, and no title, axis title or label is cut off or covered by the chart's toolbar.

Real MNIST codes (PCA of the pixels of a slice of the test set) make the maps; no app server
is needed: each figure is drawn alone in a page with the plotly.js the plotly package ships.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly
import pytest

from ae.display import figures
from tests.browser.conftest import ARTIFACTS

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

# Each shown element's box (page pixels), read from the drawn SVG.
BOXES_JS = """(selector) => [...document.querySelectorAll(selector)].map(el => {
    const r = el.getBoundingClientRect();
    return {text: el.textContent, left: r.left, top: r.top, right: r.right, bottom: r.bottom};
}).filter(b => b.right > b.left && b.bottom > b.top)"""


def draw(page, figure, width: int, name: str | None = None) -> dict:
    """Draw the figure in a `width`-pixel-wide div, toolbar shown; the div's box."""
    page.set_content(f"""<html><body style="margin:0"><div id="chart" style="width:{width}px"></div></body></html>""")
    page.add_script_tag(path=str(PLOTLY_JS))
    page.evaluate("""([figure]) => Plotly.newPlot('chart', figure.data, figure.layout,
                                                  {displayModeBar: true, responsive: false})""",
                  [json.loads(figure.to_json())])
    page.wait_for_timeout(200)
    if name:
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#chart").screenshot(path=str(ARTIFACTS / f"{name}.png"))
    return page.evaluate("() => { const r = document.getElementById('chart').getBoundingClientRect();"
                         " return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; }")


def overlap(a: dict, b: dict, slack: float = 1.0) -> bool:
    """Boxes that share more than a pixel's edge."""
    return (a["left"] < b["right"] - slack and b["left"] < a["right"] - slack
            and a["top"] < b["bottom"] - slack and b["top"] < a["bottom"] - slack)


def inside(inner: dict, outer: dict, slack: float = 1.0) -> bool:
    return (inner["left"] >= outer["left"] - slack and inner["right"] <= outer["right"] + slack
            and inner["top"] >= outer["top"] - slack and inner["bottom"] <= outer["bottom"] + slack)


def assert_nothing_cut_or_covered(page, chart: dict, has_title: bool = True) -> None:
    """Every title, axis title, tick label and annotation lies inside the chart, and none
    under the toolbar."""
    texts = page.evaluate(BOXES_JS, ".gtitle, .g-xtitle text, .g-ytitle text, .xaxislayer-above text, .yaxislayer-above text, .annotation")
    assert texts, "nothing drawn"
    for box in texts:
        assert inside(box, chart), f"{box['text']!r} is cut off: {box} outside {chart}"
    toolbar = page.evaluate(BOXES_JS, ".modebar-group")
    assert toolbar, "the toolbar is not drawn"
    titles = page.evaluate(BOXES_JS, ".gtitle")
    assert bool(titles) == has_title
    plots = page.evaluate(BOXES_JS, ".nsewdrag")
    others = [box for box in texts if box["text"] not in {title["text"] for title in titles}]
    for box in texts:
        for group in toolbar:
            assert not overlap(box, group), f"the toolbar covers {box['text']!r}"
    for title in titles:
        for box in plots + others:
            assert not overlap(title, box), f"the title {title['text']!r} overlaps {box}"


@pytest.fixture(scope="module")
def codes():
    from ae.model.data import load_dataset

    dataset = load_dataset()
    images = dataset.test_images[:3000].reshape(3000, -1).astype(np.float64)
    centred = images - images.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:2].T, dataset.y_test[:3000]


@pytest.mark.parametrize("presenting", [False, True])
@pytest.mark.parametrize("width", [560, 900])
def test_map_labels_never_overlap_each_other_or_the_star(page, codes, presenting, width):
    coordinates, labels = codes
    # The star where labels crowd most: at the centre of the digits' centres.
    star = tuple(np.mean(list(figures.cluster_centres(coordinates, labels).values()), axis=0))
    figure = figures.latent_figure(coordinates, labels, np.arange(len(labels)), "Where it lands among the test digits (PCA)",
                                   ("PCA 1", "PCA 2"), highlight=star, height=400)
    figure = figures.for_projector(figure) if presenting else figure
    chart = draw(page, figure, width, f"figure-map-{width}{'-presenting' if presenting else ''}")
    annotations = page.evaluate(BOXES_JS, ".annotation-text-g .bg, .annotation .bg")
    assert len(annotations) == 10
    for i, a in enumerate(annotations):
        for b in annotations[i + 1:]:
            assert not overlap(a, b), f"two digit labels overlap: {a} {b}"
    stars = page.evaluate(BOXES_JS, ".scatterlayer .point, .gl-container canvas")
    assert stars
    star_px = page.evaluate("""([x, y]) => { const gd = document.getElementById('chart'), l = gd._fullLayout;
        const r = gd.getBoundingClientRect();
        return [r.left + l._size.l + l.xaxis.d2p(x), r.top + l._size.t + l.yaxis.d2p(y)]; }""", list(star))
    for box in annotations:
        assert not (box["left"] - 8 < star_px[0] < box["right"] + 8 and box["top"] - 8 < star_px[1] < box["bottom"] + 8), \
            f"a label covers the star: {box}"
    assert_nothing_cut_or_covered(page, chart)


def presented(figure, presenting: bool):
    return figures.for_projector(figure) if presenting else figure


@pytest.mark.parametrize("presenting", [False, True])
def test_the_meter_and_the_noise_chart_show_every_label_whole(page, presenting):
    errors = np.random.default_rng(0).gamma(4.0, 0.02, size=10_000)
    for error, name in ((0.07, "middle"), (0.6, "far")):
        percentile = float((errors < error).mean() * 100)
        meter = presented(figures.error_meter_figure(errors, error, percentile, height=210), presenting)
        assert_nothing_cut_or_covered(page, draw(page, meter, 560, f"figure-meter-{name}{'-presenting' * presenting}"),
                                      has_title=False)
        [label] = page.evaluate(BOXES_JS, ".annotation")
        assert f"{figures.ordinal(round(percentile))} percentile" in label["text"]
    noise = figures.noise_curve_figure([0, 0.2, 0.4, 0.6], {"plain": [0.1, 0.15, 0.2, 0.3], "denoising": [0.1, 0.11, 0.13, 0.17]},
                                       "Gaussian")
    assert_nothing_cut_or_covered(page, draw(page, presented(noise, presenting), 560,
                                             f"figure-noise{'-presenting' * presenting}"))


@pytest.mark.parametrize("presenting", [False, True])
def test_the_step_heatmaps_write_every_number_at_the_body_size(page, presenting):
    rng = np.random.default_rng(1)
    before = rng.normal(0, 0.5, size=(3, 8))
    products = ["Bread", "Butter", "Jam", "Coffee", "Tea", "Biscuits", "Beer", "Crisps"]
    figure = presented(figures.weights_figure(before, before + 0.01, ["unit 1", "unit 2", "unit 3"], products,
                                              "Encoder weights W"), presenting)
    assert all(trace.textfont.size >= (21 if presenting else 16) for trace in figure.data)
    chart = draw(page, figure, 620, f"figure-weights{'-presenting' * presenting}")
    assert_nothing_cut_or_covered(page, chart)
    ticks = [box["text"] for box in page.evaluate(BOXES_JS, ".xaxislayer-above text")]
    assert sorted(ticks) == sorted(products)  # every column named, once
    subplot_titles = [b for b in page.evaluate(BOXES_JS, ".annotation") if b["text"] in ("before the step", "after")]
    numbers = page.evaluate(BOXES_JS, ".xaxislayer-above text, .yaxislayer-above text")
    for title in subplot_titles:
        for box in numbers:
            assert not overlap(title, box), f"{title['text']!r} overlaps the tick label {box['text']!r}"


@pytest.mark.parametrize("presenting", [False, True])
def test_replay_controls_leave_the_frame_name_and_the_last_step_whole(page, codes, presenting):
    coordinates, labels = codes
    sample = slice(0, 600)
    layouts = [coordinates[sample] * scale for scale in (0.2, 0.6, 1.0)]
    reconstructions = [np.random.default_rng(i).random((16, 28, 28)) for i in range(3)]
    figure = presented(figures.replay_figure(layouts, labels[sample], reconstructions, ["step 1", "epoch 1", "epoch 12"]),
                       presenting)
    chart = draw(page, figure, 1100, f"figure-replay{'-presenting' * presenting}")
    buttons = page.evaluate(BOXES_JS, ".updatemenu-button")
    slider_texts = page.evaluate(BOXES_JS, ".slider-container text")
    current = [box for box in slider_texts if box["text"].startswith("after ")]
    steps = [box for box in slider_texts if not box["text"].startswith("after ")]
    assert len(buttons) == 2 and current and len(steps) == 3
    for box in buttons:
        assert inside(box, chart)
        for other in current + steps:
            assert not overlap(box, other), f"a button covers {other['text']!r}"
    for box in current + steps:
        assert inside(box, chart), f"{box['text']!r} is cut off"
    assert_nothing_cut_or_covered(page, chart, has_title=False)  # the subplot titles too, clear of the toolbar


@pytest.mark.parametrize("presenting", [False, True])
def test_the_code_size_few_labels_and_unit_charts_show_every_label_whole(page, codes, presenting):
    from ae.analysis.code_size import RatePoint
    from ae.analysis.few_labels import probe_features
    from ae.analysis.metrics import code_activity

    points = [RatePoint(size, f"k{size}", 3.0, size == 32, 0.2 / size ** 0.3, 0.05, 0.22 / size ** 0.3, 0.06)
              for size in (2, 8, 32)]
    rate = figures.rate_distortion_figure({"dense": points, "convolutional": points[:2]}, "bce")
    assert_nothing_cut_or_covered(page, draw(page, presented(rate, presenting), 900, f"figure-rate{'-presenting' * presenting}"))
    coordinates, labels = codes
    split = 2000
    results = {name: probe_features(coordinates[:split], labels[:split], coordinates[split:], labels[split:], name,
                                    (10, 100, None), draws=2, seed=0) for name in ("autoencoder", "pca")}
    probe = figures.probe_figure(results, {"autoencoder": "the autoencoder's codes", "pca": "PCA codes"})
    assert_nothing_cut_or_covered(page, draw(page, presented(probe, presenting), 900, f"figure-probe{'-presenting' * presenting}"))
    activity = code_activity(np.abs(np.column_stack([coordinates] * 8)), labels)
    units = figures.unit_heatmap(activity)
    assert_nothing_cut_or_covered(page, draw(page, presented(units, presenting), 900, f"figure-units{'-presenting' * presenting}"))
