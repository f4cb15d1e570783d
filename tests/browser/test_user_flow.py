"""A new user's first visit, in a real browser: quick model, a longer run stopped midway, then the results pages.

One test, because each step builds on the previous one's model (the server and its model
cache live for the session). Every wait is bounded; screenshots land in test-artifacts/.
"""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from .conftest import loss_chart_points, plotly_traces, screenshot, wait_for_app_idle

pytestmark = pytest.mark.browser

PROGRESS_TEXT = re.compile(r"Epoch (\d+) of (\d+) · step (\d+)/(\d+)")
STOPPED_TEXT = re.compile(r"Stopped after ([\d.]+) of 100 epochs")

# The progress bar that is shown (a fragment rerun briefly keeps a hidden stale copy).
READ_PROGRESS = """() => {
    const shown = [...document.querySelectorAll('[data-testid="stProgress"]')]
        .filter(el => el.getBoundingClientRect().height > 0);
    const bar = shown[0];
    if (!bar) return null;
    const meter = bar.querySelector('[role="progressbar"]');
    return {text: bar.innerText.trim(), value: meter ? Number(meter.getAttribute('aria-valuenow')) : null};
}"""


# The digit labels drawn on the latent map, and the screen position of one of its points.
MAP_LABELS = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.getBoundingClientRect().height > 0);
    return plot ? (plot.layout.annotations || []).map(a => a.text.replace(/<[^>]+>/g, '')).sort() : [];
}"""
A_POINT_ON_SCREEN = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.getBoundingClientRect().height > 0);
    const trace = plot._fullData[0], box = plot.getBoundingClientRect();
    const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
    // A point near the middle of the map's range, away from the edges and the labels' boxes.
    let best = 0, bestDistance = Infinity;
    const cx = (xa.range[0] + xa.range[1]) / 2 + (xa.range[1] - xa.range[0]) * 0.13;
    const cy = (ya.range[0] + ya.range[1]) / 2 - (ya.range[1] - ya.range[0]) * 0.11;
    for (let i = 0; i < trace.x.length; i++) {
        const d = (trace.x[i] - cx) ** 2 + (trace.y[i] - cy) ** 2;
        if (d < bestDistance) { best = i; bestDistance = d; }
    }
    return [box.left + xa._offset + xa.l2p(trace.x[best]), box.top + ya._offset + ya.l2p(trace.y[best])];
}"""


def read_progress(page) -> dict | None:
    """The progress bar's text, parsed, and its aria-valuenow (percent); None without a bar."""
    raw = page.evaluate(READ_PROGRESS)
    if raw is None:
        return None
    match = PROGRESS_TEXT.search(raw["text"])
    if match is None:
        return {**raw, "global_step": None}
    epoch, _total, step, steps_per_epoch = match.groups()
    global_step = (int(epoch) - 1) * int(steps_per_epoch) + int(step)
    return {**raw, "global_step": global_step}


def nav_link(page, name: str):
    """A page's link in the navigation bar across the top."""
    return page.get_by_test_id("stTopNav").get_by_role("link", name=name, exact=True)


def wait_until(predicate, timeout_s: float, message, interval_s: float = 0.25):
    """Poll `predicate` until it returns something truthy; fail with `message` (text, or a
    function giving it, evaluated then) at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{message() if callable(message) else message} (after {timeout_s:.0f} s)")
        time.sleep(interval_s)


def test_new_user_trains_stops_and_explores(browser, app_server, page):  # browser first: no chromium, no server
    # a) Home, then one click to a quick model, which finishes on the Train page.
    page.goto(app_server)
    wait_for_app_idle(page)
    expect(page.get_by_role("heading", name="Autoencoder Explorer")).to_be_visible()
    quick = page.get_by_role("button", name=re.compile(r"^Train a quick model"))
    expect(quick).to_be_visible()
    quick.click()
    expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Finished:").first).to_be_visible(timeout=120_000)
    wait_for_app_idle(page)
    wait_until(lambda: loss_chart_points(page) > 0, 20, "the finished quick model's loss chart stayed empty")
    expect(page.get_by_text(re.compile(r"^1 epoch · \d+ s of training")).first).to_be_visible()
    screenshot(page, "train_quick_done")

    # b) A 100-epoch run: progress and the loss chart move while it runs, and freeze after Stop.
    epochs = page.get_by_role("spinbutton", name="Epochs (1 to 200)")
    epochs.fill("100")
    epochs.press("Enter")
    page.wait_for_timeout(500)
    wait_for_app_idle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text(re.compile(r"Epoch \d+ of 100")).first).to_be_visible(timeout=30_000)

    observations = []

    def moving():
        progress = read_progress(page)
        if progress and progress["global_step"] is not None:
            observations.append({**progress, "points": loss_chart_points(page), "at": time.monotonic()})
        steps = {o["global_step"] for o in observations}
        values = {o["value"] for o in observations if o["value"] is not None}
        return len(steps) >= 3 and len(values) >= 2 and observations[-1]["points"] > 0

    wait_until(moving, 90, "the 100-epoch run's progress did not move")
    first_points = observations[-1]["points"]
    first_at = time.monotonic()
    wait_until(lambda: time.monotonic() - first_at >= 2.5 and loss_chart_points(page) > first_points, 30,
               f"the loss chart stayed at {first_points} points while training")
    final = read_progress(page)
    observations.append({**final, "points": loss_chart_points(page), "at": time.monotonic()})
    screenshot(page, "train_running")

    steps = [o["global_step"] for o in observations if o["global_step"] is not None]
    values = [o["value"] for o in observations if o["value"] is not None]
    assert steps[-1] > steps[0], f"training steps did not increase: {steps}"
    assert values[-1] > values[0], f"the progress bar (aria-valuenow) did not increase: {values}"
    assert observations[-1]["points"] > first_points
    assert " of 100" in final["text"], final["text"]

    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.get_by_text("Stopped:").first).to_be_visible(timeout=60_000)
    wait_for_app_idle(page)
    stopped = (read_progress(page), loss_chart_points(page))
    page.wait_for_timeout(2_500)
    wait_for_app_idle(page)
    screenshot(page, "train_stopped")
    assert (read_progress(page), loss_chart_points(page)) == stopped, "progress kept changing after Stop"
    shown = STOPPED_TEXT.search(stopped[0]["text"])
    assert shown and float(shown.group(1)) < 100, f"the run was stopped early, yet shows {stopped[0]['text']!r}"
    assert stopped[0]["value"] < 100, "a stopped run's bar must not look complete"
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_disabled()

    # c) Reconstructions: digit strips and the summary metrics.
    nav_link(page, "Reconstructions").click()
    expect(page.get_by_role("heading", name="Reconstructions", exact=True)).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Autoencoder, test BCE").first).to_be_visible(timeout=120_000)
    wait_for_app_idle(page)
    images = page.get_by_test_id("stImage")
    wait_until(lambda: images.count() >= 20, 30, lambda: f"fewer than 20 images on Reconstructions ({images.count()})")
    wait_until(lambda: plotly_traces(page), 30, "the error histogram did not draw")
    screenshot(page, "reconstructions")

    # d) Latent space: every digit in one shuffled trace, a label at each digit's centre; one
    #    click on a point shows its digit at once.
    nav_link(page, "Latent space").click()
    expect(page.get_by_role("heading", name="Latent space", exact=True)).to_be_visible(timeout=30_000)
    wait_until(lambda: page.evaluate(MAP_LABELS) == [str(d) for d in range(10)], 120,
               lambda: f"the latent map does not label the digits 0-9: {page.evaluate(MAP_LABELS)}")
    wait_for_app_idle(page)
    traces = plotly_traces(page)
    assert traces[0]["points"] >= 2000, traces
    expect(page.get_by_text(re.compile(r"^Test digit #"))).to_have_count(0)
    x, y = page.evaluate(A_POINT_ON_SCREEN)
    page.mouse.click(x, y)
    expect(page.get_by_text(re.compile(r"^Test digit #\d+: a \d$")).first).to_be_visible(timeout=30_000)
    wait_for_app_idle(page)
    assert "default value but also had its value set" not in page.inner_text("body")
    screenshot(page, "latent")

    # e) Home shows the model just trained.
    nav_link(page, "Home").click()
    expect(page.get_by_text("Current model").first).to_be_visible(timeout=30_000)
    wait_for_app_idle(page)
    expect(page.get_by_role("heading", name="Autoencoder Explorer")).to_be_visible()
    for link in ("See its reconstructions", "Explore its latent space", "Train another"):
        expect(page.get_by_role("link", name=link)).to_be_visible()
    screenshot(page, "home")
