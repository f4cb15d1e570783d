"""For the lecture hall, in a real browser: the purchase-table example stepped through, and the
training replay of a small run played."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import screenshot, wait_for_app_idle
from .test_user_flow import nav_link, wait_until

pytestmark = pytest.mark.browser

ENCODER_AFTER = """() => {
    const plot = [...document.querySelectorAll('.st-key-encoder_weights .js-plotly-plot')][0];
    return plot && plot.data ? JSON.stringify(plot.data[1].z) : null;
}"""
REPLAY_STATE = """() => {
    const plot = document.querySelector('.st-key-replay_chart .js-plotly-plot');
    if (!plot || !plot.data) return null;
    const x = plot.data[0].x;
    const first = x ? (x.bdata ? x.bdata.slice(0, 24) : Array.from(x.slice(0, 3)).join(',')) : '';
    return {frames: (plot._transitionData?._frames || []).length, first: first,
            active: plot._fullLayout.sliders?.[0]?.active ?? null};
}"""


def test_next_step_changes_the_weights_and_the_replay_plays(browser, app_server, page):
    page.goto(app_server + "/step_by_step")
    wait_for_app_idle(page)
    seen = []
    for number in range(3):
        page.get_by_role("button", name="Next step").click()
        expect(page.get_by_text(re.compile(r"The last step: (Ann|Ben|Cleo)")).first).to_be_visible()
        wait_for_app_idle(page)
        wait_until(lambda: page.evaluate(ENCODER_AFTER) not in (None, *seen), 20,
                   f"step {number + 1} did not change the encoder's weights")
        seen.append(page.evaluate(ENCODER_AFTER))
    expect(page.get_by_text("The last step: Cleo")).to_be_visible()
    screenshot(page, "step_by_step")

    page.goto(app_server + "/train?code=2&epochs=3&digits=6000&seed=21")
    wait_for_app_idle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text(re.compile("Finished: Dense")).first).to_be_visible(timeout=180_000)
    nav_link(page, "Latent space").click()
    wait_for_app_idle(page)
    page.get_by_text(re.compile("Show how the codes organised themselves")).click()
    wait_for_app_idle(page)
    state = wait_until(lambda: page.evaluate(REPLAY_STATE), 30, "no replay chart")
    assert state["frames"] >= 5  # steps 1, 4, 16 and three epochs
    assert state["active"] == 0  # it opens on the first frame, after one step
    first_frame = state["first"]
    page.locator(".st-key-replay_chart").get_by_text("▶ Play").click()
    wait_until(lambda: page.evaluate(REPLAY_STATE)["first"] != first_frame, 15, "Play did not move the points")
    wait_until(lambda: page.evaluate(REPLAY_STATE)["active"] == state["frames"] - 1, 30, "Play did not reach the last frame")
    screenshot(page, "latent_replay")
