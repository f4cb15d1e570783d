"""A deep link as the very first request after a server start is still served through app.py."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import ROOT, screenshot, serve_app, wait_for_app_idle

pytestmark = pytest.mark.browser

APP_PAGES = {"home", "train", "reconstructions", "latent", "your_digit", "code_size", "step_by_step", "few_labels"}
HELPER_MODULES = sorted(path.stem for path in (ROOT / "pages").glob("*.py") if path.stem not in APP_PAGES | {"__init__"})


def test_first_request_to_a_page_url_gets_the_apps_navigation(browser, page, tmp_path):
    with serve_app(tmp_path / "cache", log_name="server-deep-link.log") as url:
        page.goto(f"{url}/latent")
        wait_for_app_idle(page)
        expect(page.get_by_role("heading", name="Latent space", exact=True)).to_be_visible(timeout=30_000)
        expect(page.get_by_text("No model is trained yet").first).to_be_visible(timeout=30_000)
        navigation = page.get_by_test_id("stTopNav")
        for title in ("Home", "Train", "Reconstructions", "Latent space", "Code size", "Few labels"):
            expect(navigation.get_by_role("link", name=title, exact=True)).to_be_visible()
        # Streamlit's legacy pages/ mode would list the files themselves, helpers included.
        assert "model_picker" in HELPER_MODULES, HELPER_MODULES
        for helper in HELPER_MODULES:
            expect(page.get_by_role("link", name=helper.replace("_", " "), exact=True)).to_have_count(0)
        expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
        screenshot(page, "deep_link_latent")
