"""The autoencoder family in a real browser: a small variational model at code size 2, trained
through a shared link, then its manifold over the prior, new digits, and the unit heatmap."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import screenshot, wait_for_app_idle
from .test_user_flow import nav_link, wait_until

pytestmark = pytest.mark.browser

# A hand-typed link names the architecture's short key; the page's own links carry its label
# ("Variational (VAE)"): tests/test_inputs.py checks both, this one the short key in a browser.
VAE_LINK = "/train?arch=vae&code=2&epochs=3&digits=20000&seed=5"


def test_a_small_vae_trains_and_shows_its_manifold(browser, app_server, page):
    page.goto(app_server + VAE_LINK)
    wait_for_app_idle(page)
    expect(page.get_by_role("spinbutton", name="Code size (1 to 784)")).to_have_value("2")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text("Finished: Variational (VAE), code size 2").first).to_be_visible(timeout=180_000)
    wait_for_app_idle(page)
    # Its loss chart shows the two terms of the loss.
    wait_until(lambda: "validation: beta x KL" in page.inner_text("body") or page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].some(p => (p.data || []).some(t => t.name === 'validation: beta x KL'))"),
        30, "the VAE's loss chart has no KL curve")
    screenshot(page, "vae_train")

    nav_link(page, "Latent space").click()
    expect(page.get_by_role("heading", name="The learned manifold")).to_be_visible(timeout=120_000)
    wait_for_app_idle(page)
    expect(page.get_by_text(re.compile("a grid of the prior's quantiles")).first).to_be_visible()
    page.get_by_role("button", name="Sample new digits").click()
    expect(page.get_by_text(re.compile(r"\(draw 2\)")).first).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name="Which units fire for which digits")).to_be_visible()
    wait_for_app_idle(page)
    screenshot(page, "vae_latent")
