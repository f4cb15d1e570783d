"""Your digit in a real browser: a digit drawn with mouse strokes on the canvas, read by a small
model: its reconstruction, the anomaly meter and the star on the map."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import screenshot, wait_for_app_idle
from .test_user_flow import nav_link, wait_until

pytestmark = pytest.mark.browser

SMALL_MODEL = "/train?code=16&epochs=5&digits=20000&seed=11"
SEVEN = [(0.2, 0.2), (0.8, 0.2), (0.55, 0.55), (0.4, 0.9)]  # a 7, as fractions of the canvas


def draw(page, canvas, points) -> None:
    box = canvas.bounding_box()
    x, y = (box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.move(x, y)
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=12)
    page.mouse.up()


def star_on_map(page) -> bool:
    return page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .some(plot => (plot.data || []).some(trace => trace.marker && trace.marker.symbol === 'star'))""")


def test_a_drawn_digit_is_read_by_the_model(browser, app_server, page):
    page.goto(app_server + SMALL_MODEL)
    wait_for_app_idle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text(re.compile("Finished: Dense")).first).to_be_visible(timeout=180_000)

    nav_link(page, "Your digit").click()
    expect(page.get_by_text("Draw a digit (or upload a picture of one)")).to_be_visible(timeout=60_000)
    wait_for_app_idle(page)
    canvas = page.locator("canvas[aria-label^='Drawing area']")
    expect(canvas).to_be_visible()
    draw(page, canvas, SEVEN)
    expect(page.get_by_text(re.compile(r"The code says \d, \d+%"))).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"^Error \d\.\d{3}:"))).to_be_visible()
    wait_for_app_idle(page)
    wait_until(lambda: star_on_map(page), 20, "no star on the map")
    meter = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .some(plot => (plot.data || []).some(trace => trace.type === 'histogram'))""")
    assert meter, "no anomaly meter"
    screenshot(page, "your_digit")

    # A second stroke changes the drawing, and so the reading.
    before = page.get_by_text(re.compile(r"^Error \d\.\d{3}:")).inner_text()
    draw(page, canvas, [(0.3, 0.55), (0.75, 0.55)])  # a bar across the 7
    wait_until(lambda: page.get_by_text(re.compile(r"^Error \d\.\d{3}:")).inner_text() != before, 30,
               "a second stroke did not change the reading")
    page.get_by_role("button", name="Clear").click()
    expect(page.get_by_text("Draw a digit (or upload a picture of one)")).to_be_visible(timeout=30_000)
