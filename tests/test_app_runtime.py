"""Canaries for the two Streamlit internals the app relies on to keep each rerun cheap.

A Streamlit upgrade that renames them would silently bring back a full garbage collection
and a Keras reset after every script and fragment run (see app.py and .streamlit/config.toml).
"""
from __future__ import annotations

import inspect
import tomllib

from tests.conftest import ROOT


def test_the_keras_clean_up_hook_app_py_turns_off_still_exists():
    from streamlit.runtime.scriptrunner import script_runner

    assert callable(script_runner._clean_problem_modules)
    assert "clear_session" in inspect.getsource(script_runner._clean_problem_modules)
    assert "_clean_problem_modules" in (ROOT / "app.py").read_text()


def test_the_post_run_garbage_collection_is_off_and_still_an_option():
    from streamlit import config
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["runner"]["postScriptGC"] is False
    assert "runner.postScriptGC" in config._config_options_template
    assert 'get_option("runner.postScriptGC")' in inspect.getsource(ScriptRunner._on_script_finished)
