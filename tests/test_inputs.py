"""Every control with the values a room types: settings kept across pages and in the URL,
out-of-range numbers refused in words (never used silently), and a property-based run
(hypothesis) that drives every number box of every page with odd values.
"""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.test_pages import assert_clean, open_page, texts
from ae.analysis.few_labels import MAX_SEED

TRAIN_NUMBERS = {"code": (1, 784), "epochs": (1, 200), "digits": (10, 2000), "seed": (0, 2**31 - 1)}


def test_train_settings_come_from_the_url(app_env):
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.query_params.update({"code": "10", "epochs": "3", "digits": "1500", "seed": "4", "lr": "0.003"})
    app.run()
    app.switch_page("pages/train.py").run()
    assert_clean(app)
    values = {key: app.number_input(key=key).value for key in ("code", "epochs", "digits", "seed")}
    assert values == {"code": 10, "epochs": 3, "digits": 1500, "seed": 4}
    assert app.select_slider(key="lr").value == 0.003
    assert not app.button(key="train_button").disabled


@pytest.mark.parametrize("typed", ["conv", "Convolutional"])
def test_the_architecture_comes_from_the_url_by_name_or_label(app_env, typed):
    """A hand-typed link says `arch=conv`; the page's own links carry the label."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.query_params["arch"] = typed
    app.run()
    app.switch_page("pages/train.py").run()
    assert_clean(app)
    assert app.selectbox(key="arch").value == "conv"


def test_train_settings_survive_a_visit_to_another_page(app_env):
    app = open_page("pages/train.py")
    app.number_input(key="code").set_value(10).run()
    app.number_input(key="epochs").set_value(3).run()
    app.number_input(key="digits").set_value(1500).run()
    app.switch_page("pages/latent.py").run()
    app.switch_page("pages/train.py").run()
    assert_clean(app)
    assert [app.number_input(key=key).value for key in ("code", "epochs", "digits")] == [10, 3, 1500]


@pytest.mark.parametrize("key,typed,phrase", [
    ("epochs", 201, "Epochs must be a whole number from 1 to 200; got 201"),
    ("epochs", 0, "got 0"),
    ("epochs", -1, "got -1"),
    ("digits", 5, "Training digits must be a whole number from 10 to 2,000; got 5"),
    ("digits", 70_000, "got 70000"),
    ("seed", -1, "Seed must be a whole number from 0 to 2,147,483,647; got -1"),
])
def test_out_of_range_train_settings_are_refused_in_words(app_env, key, typed, phrase):
    app = open_page("pages/train.py")
    app.number_input(key=key).set_value(typed).run()
    assert_clean(app)
    assert any(phrase in e.value for e in app.error), [e.value for e in app.error]
    assert app.button(key="train_button").disabled
    assert "Train is off until the settings above are fixed" in texts(app)


def test_continue_refuses_zero_or_too_many_epochs(trained_env):
    app = open_page("pages/train.py")
    assert not app.button(key="continue_button").disabled
    for typed in (0, 500):
        app.number_input(key="extra_epochs").set_value(typed).run()
        assert_clean(app)
        assert any(f"Epochs to add must be a whole number from 1 to 200; got {typed}" in e.value for e in app.error)
        assert app.button(key="continue_button").disabled
    app.number_input(key="extra_epochs").set_value(3).run()
    assert app.button(key="continue_button").label == "Continue +3" and not app.button(key="continue_button").disabled


@pytest.mark.parametrize("typed,phrase", [(0, "Epochs each must be a whole number from 1 to 200; got 0"),
                                          (1000, "got 1000")])
def test_sweep_epochs_out_of_range_are_refused(app_env, typed, phrase):
    app = open_page("pages/code_size.py")
    app.number_input(key="sweep_epochs").set_value(typed).run()
    assert_clean(app)
    assert any(phrase in e.value for e in app.error)
    assert app.button(key="start_sweep").disabled


def test_few_labels_seed_out_of_range_is_refused(trained_env):
    app = open_page("pages/few_labels.py")
    app.number_input(key="probe_seed").set_value(-1).run()
    assert_clean(app)
    assert any(f"Seed must be a whole number from 0 to {MAX_SEED:,}; got -1" in e.value for e in app.error)


# ---- property-based: any value in any number box is accepted or refused in words ----------
ODD_NUMBERS = st.one_of(
    st.none(),
    st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
    st.sampled_from([0, -1, 1, 2.5, 1e-9, 2**31, 2**31 - 1, 785, 60_001, 10**15]),
)
# Each example is a real page run (about a second): few examples, fixed, and no shrinking.
FUZZ = settings(max_examples=8, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _accepted_or_refused(app: AppTest, key: str, low: int, high: int) -> None:
    """What the box now holds (an emptied box falls back to its default) is used, or a
    sentence says why not."""
    assert_clean(app)
    value = app.number_input(key=key).value
    whole = value is not None and float(value).is_integer()
    refusals = [e.value for e in app.error if "must be" in e.value]
    if whole and low <= value <= high:
        assert not refusals, (key, value, refusals)
    else:
        assert refusals, f"{key}={value!r} was neither used nor refused"


def _type_into(page: str, key: str, low: int, high: int, value) -> None:
    app = open_page(page)
    app.number_input(key=key).set_value(value).run()
    _accepted_or_refused(app, key, low, high)


@FUZZ
@given(key=st.sampled_from(sorted(TRAIN_NUMBERS)), value=ODD_NUMBERS)
def test_every_train_number_box_accepts_or_refuses_any_value(app_env, key, value):
    app = open_page("pages/train.py")
    app.number_input(key=key).set_value(value).run()
    _accepted_or_refused(app, key, *TRAIN_NUMBERS[key])
    if app.error:
        assert app.button(key="train_button").disabled


@FUZZ
@given(page_key=st.sampled_from([("pages/code_size.py", "sweep_epochs", 1, 200),
                                 ("pages/code_size.py", "sweep_train_size", 10, 2000)]),
       value=ODD_NUMBERS)
def test_every_sweep_number_box_accepts_or_refuses_any_value(app_env, page_key, value):
    _type_into(*page_key, value)


@FUZZ
@given(page_key=st.sampled_from([("pages/train.py", "extra_epochs", 1, 200), ("pages/few_labels.py", "probe_seed", 0, MAX_SEED)]),
       value=ODD_NUMBERS)
def test_number_boxes_on_model_pages_accept_or_refuse_any_value(trained_env, page_key, value):
    _type_into(*page_key, value)


@FUZZ
@given(position=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
       size=st.integers(min_value=-5, max_value=50))
def test_sliders_on_model_pages_take_any_value_in_their_range(trained_env, position, size):
    """Sliders can only send values in their range; any of them works, at the edges too."""
    app = open_page("pages/latent.py")
    x = app.slider(key="decode_x")
    x.set_value(min(max(position, x.min), x.max)).run()
    assert_clean(app)
    manifold = app.slider(key="manifold_size")
    manifold.set_value(min(max(size, manifold.min), manifold.max)).run()
    assert_clean(app)
    assert not math.isnan(app.slider(key="decode_x").value)
