"""A lecture with roles in real browsers: the lecturer signs in with the key (a reload keeps
the role; the key is in no URL, page or log), a student's 16-size sweep waits behind the
lecturer's run, which starts next, and the lecturer stops another student's run.

Three browser contexts at 1280x720 (the lecturer's projector, two students) on one server
with a lecturer key and one training slot. Screenshots land in test-artifacts/roles-*.png.
"""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from .conftest import ARTIFACTS, screenshot_viewport, serve_app, wait_for_app_idle
from .test_room import PROJECTOR, open_at

pytestmark = pytest.mark.browser

KEY = "lecture-key-b41c7e"
LONG_RUN = "/train?code=8&epochs=200&digits=60000&seed=3"  # a student's long run, stopped by the lecturer
LECTURE_RUN = "/train?code=6&epochs=1&digits=4000&seed=11"  # the lecturer's quick demonstration
SWEEP_SIZES = ["1", "2", "3", "4", "6", "12", "16", "24", "32", "49", "64", "96", "128", "196", "256", "392"]


@pytest.fixture(scope="module")
def room_server(tmp_path_factory):
    extra = {"AE_LECTURER_KEY": KEY, "AE_STUDENT_JOBS": "16", "AE_TRAINING_SLOTS": "1"}
    with serve_app(tmp_path_factory.mktemp("roles-cache"), "roles-server.log", extra) as url:
        yield url
    log = (ARTIFACTS / "roles-server.log").read_text()
    assert KEY not in log, "the lecturer key appeared in the server's log"


def sign_in(page) -> None:
    page.get_by_text("Lecturer? Sign in").click()
    page.get_by_label("Lecturer key", exact=True).fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("You are signed in as the").first).to_be_visible(timeout=30_000)


def start_sweep(page, sizes: list[str]) -> None:
    """The Code size page's sweep over `sizes`, one epoch each on a few digits."""
    box = page.get_by_test_id("stMultiSelect").first
    box.get_by_role("button", name=re.compile("Clear all", re.I)).click()
    for size in sizes:
        box.locator("input").fill(size)
        page.get_by_role("option", name=size, exact=True).click()
    page.keyboard.press("Escape")
    for label, value in (("Epochs each", "1"), ("Training digits", "2000")):
        field = page.get_by_role("spinbutton", name=label)
        field.fill(value)
        field.press("Enter")
        page.wait_for_timeout(500)
        wait_for_app_idle(page)
    page.get_by_role("button", name="Start sweep").click()
    expect(page.get_by_text(re.compile(rf"Sweep: \d+ of {len(sizes)} models done")).first).to_be_visible(timeout=30_000)


def test_a_lecture_with_a_lecturer_and_two_students(browser, room_server):
    contexts = [browser.new_context(viewport=PROJECTOR) for _ in range(3)]
    try:
        lecturer_context, alice_context, bob_context = contexts
        lecturer = open_at(lecturer_context, room_server + "/train")
        sign_in(lecturer)
        lecturer.reload()  # within a lecture a reload keeps the role: the cookie holds a signed token
        wait_for_app_idle(lecturer)
        expect(lecturer.get_by_text("You are signed in as the").first).to_be_visible(timeout=30_000)
        assert KEY not in lecturer.url and KEY not in lecturer.content()
        assert all(KEY not in cookie["value"] for cookie in lecturer_context.cookies())

        # Alice starts a long run; Bob queues a 16-size sweep behind it.
        alice = open_at(alice_context, room_server + LONG_RUN)
        expect(alice.get_by_text("Lecturer? Sign in")).to_be_visible()
        alice.get_by_role("button", name="Train", exact=True).click()
        expect(alice.get_by_text(re.compile(r"Epoch \d+ of 200")).first).to_be_visible(timeout=90_000)
        bob = open_at(bob_context, room_server + "/code_size")
        start_sweep(bob, SWEEP_SIZES)

        # The lecturer's run goes to the front of the line, ahead of all 16.
        lecturer.goto(room_server + LECTURE_RUN)
        wait_for_app_idle(lecturer)
        lecturer.get_by_role("button", name="Train", exact=True).click()
        pressed = time.monotonic()
        expect(lecturer.get_by_text(re.compile(r"Queued: place 1 in line")).first).to_be_visible(timeout=30_000)

        # Bob may not stop Alice's run; the lecturer may, and does.
        bob_watching = open_at(bob_context, room_server + LONG_RUN)
        expect(bob_watching.get_by_role("button", name="Stop")).to_be_disabled()
        watcher = lecturer_context.new_page()
        watcher.goto(room_server + LONG_RUN)
        wait_for_app_idle(watcher)
        stop = watcher.get_by_role("button", name="Stop")
        expect(stop).to_be_enabled()
        stop.click()
        expect(alice.get_by_text(re.compile(r"Stopped after")).first).to_be_visible(timeout=60_000)

        # The lecturer's digits appear next, before any of Bob's sizes trains.
        expect(lecturer.get_by_text("16 test digits").first).to_be_visible(timeout=120_000)
        first_digits = time.monotonic() - pressed
        expect(bob.get_by_text(re.compile(r"Sweep: 0 of 16 models done")).first).to_be_visible()
        screenshot_viewport(lecturer, "roles-lecturer")
        screenshot_viewport(bob, "roles-student-sweep")
        alice.goto(room_server + "/train")
        wait_for_app_idle(alice)
        screenshot_viewport(alice, "roles-student-train")
        (ARTIFACTS / "roles-timing.txt").write_text(
            f"lecturer's Train to first digits, a 16-size sweep queued and a student's run stopped: {first_digits:.1f} s\n")
        for page in (lecturer, alice, bob, watcher, bob_watching):
            assert KEY not in page.url and KEY not in page.content()
    finally:
        for context in contexts:
            context.close()
