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


def overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def inside(inner: dict, outer: dict, slack: float = 1.0) -> bool:
    return (inner["left"] >= outer["left"] - slack and inner["right"] <= outer["right"] + slack
            and inner["top"] >= outer["top"] - slack and inner["bottom"] <= outer["bottom"] + slack)


def assert_nothing_cut_or_covered(page, chart: dict) -> None:
    """Every title, axis title, tick label and annotation lies inside the chart, and none
    under the toolbar."""
    texts = page.evaluate(BOXES_JS, ".gtitle, .g-xtitle text, .g-ytitle text, .xtick text, .ytick text, .annotation")
    assert texts, "nothing drawn"
    for box in texts:
        assert inside(box, chart), f"{box['text']!r} is cut off: {box} outside {chart}"
    toolbar = page.evaluate(BOXES_JS, ".modebar-group")
    assert toolbar, "the toolbar is not drawn"
    titles = page.evaluate(BOXES_JS, ".gtitle")
    plots = page.evaluate(BOXES_JS, ".nsewdrag")
    others = [box for box in texts if box["text"] not in {title["text"] for title in titles}]
    for title in titles:
        for group in toolbar:
            assert not overlap(title, group), f"the toolbar covers the title {title['text']!r}"
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
