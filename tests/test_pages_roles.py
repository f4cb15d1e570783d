"""Roles on the pages (AppTest): a student sees why a pinned model cannot be changed and gets a
copy, the lecturer signs in with the key (which is never shown again), the room panel is the
lecturer's only, and a sweep over a student's cap is refused in words."""
from __future__ import annotations

import pytest

from ae.model.config import TrainingConfig
from tests.conftest import wait_for_condition
from tests.test_pages import assert_clean, open_page, texts
from tests.test_training import wait_until_done

KEY = "lecture-key-7f3a9"
TINY = TrainingConfig(code_size=8, epochs=1, batch_size=64, train_size=300, seed=3)


@pytest.fixture
def room_env(app_env, monkeypatch, small_mnist_path):
    """A server with a lecturer key, and a preset the warm-up trained and pinned."""
    from ae.jobs.manager import get_manager
    from ae.model.data import load_dataset

    monkeypatch.setenv("AE_LECTURER_KEY", KEY)
    manager = get_manager(load_dataset(small_mnist_path), app_env)
    preset = manager.request(TINY, pin=True)
    assert wait_until_done(preset).has_model
    return manager


def everything(app) -> str:
    """Every element's protobuf as sent to the browser: what the page's source would carry."""
    found = []

    def walk(node) -> None:
        found.append(repr(getattr(node, "proto", "")))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(app._tree)
    return "\n".join(found)


def test_a_student_sees_why_a_pinned_model_stays_and_continues_a_copy(room_env):
    app = open_page("pages/train.py")
    shown = texts(app)
    assert "pinned by the lecturer" in shown
    assert "The lecturer pinned this model, so it stays as it is for everyone" in shown
    assert "Your copy: the same settings for 3 epochs, trained from scratch" in shown
    assert app.button(key="delete_button").disabled and app.button(key="pin_button").disabled
    assert app.button(key="resume_button").disabled
    assert not any("Clear the queue" in button.label for button in app.button)  # the lecturer's panel is not here

    app.button(key="continue_button").click().run()
    assert_clean(app)
    copy = room_env.get(TINY.with_changes(epochs=3).key)
    assert copy is not None and wait_until_done(copy).has_model
    preset = room_env.get(TINY.key).snapshot()
    assert preset.pinned and preset.history.epochs_done == 1  # untouched


def test_the_lecturer_signs_in_once_and_the_key_is_never_shown(room_env):
    app = open_page("pages/train.py")
    app.text_input(key="lecturer_key_field").input("not the key")
    app.button[[b.label for b in app.button].index("Sign in")].click().run()
    assert "That is not the lecturer key" in texts(app)

    app.text_input(key="lecturer_key_field").input(KEY)
    app.button[[b.label for b in app.button].index("Sign in")].click().run()
    assert_clean(app)
    shown = texts(app)
    assert "signed in as the **lecturer**" in shown
    assert "The lecturer pinned this model" not in shown  # the lecturer continues the model itself
    assert not app.button(key="delete_button").disabled and not app.button(key="pin_button").disabled
    assert any("Clear the queue" in button.label for button in app.button)
    assert "Model cache:" in shown
    assert KEY not in everything(app) and KEY not in repr(app.session_state)
    assert "signed in as the **lecturer**" in everything(app)  # the walk does see the page

    app.button(key="pin_button").click().run()  # unpin, as the lecturer
    assert_clean(app)
    wait_for_condition(lambda: not room_env.get(TINY.key).snapshot().pinned, 10)

    app.button(key="lecturer_sign_out").click().run()
    assert any("Lecturer? Sign in" in e.label for e in app.expander) and app.button(key="pin_button").disabled


def test_a_students_sweep_over_the_cap_is_refused_in_words(room_env, monkeypatch):
    from pages.code_size import SIZE_CHOICES

    monkeypatch.setenv("AE_STUDENT_JOBS", "4")
    app = open_page("pages/code_size.py")
    app.multiselect(key="sweep_sizes").set_value(SIZE_CHOICES[:16]).run()
    app.button(key="start_sweep").click().run()
    assert_clean(app)
    warnings = [w.value for w in app.warning]
    assert any(w.startswith("This sweep would queue 16 models, but a student may have at most 4 queued or training")
               for w in warnings), warnings
    assert not room_env.queued_jobs()
