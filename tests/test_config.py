"""ae.model.config: validation with actionable messages, the stable key, hashing and serialization."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from types import SimpleNamespace

import pytest

from ae.model.config import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_TRAIN_SIZE, TrainingConfig, validation_errors

DEFAULTS = dict(
    architecture="dense", code_size=49, epochs=5, batch_size=256, learning_rate=1e-3, train_size=60_000, seed=0,
    noise_kind="none", noise_level=0.0, sparsity=0.0, beta=1.0, contractive=0.0,
)


def test_defaults_are_the_article_setup_and_valid():
    config = TrainingConfig()
    assert dataclasses.asdict(config) == DEFAULTS
    assert validation_errors(config) == {}
    assert "Dense (article)" in config.describe()
    assert "code size 49" in config.describe()


def test_limits_are_what_the_messages_promise():
    assert (MAX_EPOCHS, MAX_BATCH_SIZE, MAX_TRAIN_SIZE) == (200, 8192, 60_000)


# field, bad value, phrases the message must contain (the allowed range, so a user can act on it)
INVALID = [
    ("architecture", "rbm", ["Unknown architecture 'rbm'", "dense, deep_dense, conv, vae"]),
    ("code_size", 0, ["Code size", "from 1 to 784"]),
    ("code_size", 785, ["Code size", "from 1 to 784"]),
    ("code_size", 2.5, ["Code size", "whole number", "got 2.5"]),
    ("code_size", True, ["Code size", "got True"]),
    ("epochs", 0, ["Epochs", "from 1 to 200"]),
    ("epochs", 201, ["Epochs", "from 1 to 200"]),
    ("epochs", 5.0, ["Epochs", "whole number"]),
    ("batch_size", 0, ["Batch size", "from 1 to 8,192"]),
    ("batch_size", 8193, ["Batch size", "from 1 to 8,192"]),
    ("learning_rate", 0.0, ["Learning rate", "above 0 and at most 1"]),
    ("learning_rate", -0.01, ["Learning rate", "above 0 and at most 1"]),
    ("learning_rate", 1.5, ["Learning rate", "above 0 and at most 1"]),
    ("learning_rate", math.nan, ["Learning rate", "above 0 and at most 1"]),
    ("learning_rate", math.inf, ["Learning rate", "above 0 and at most 1"]),
    ("learning_rate", True, ["Learning rate", "got True"]),
    ("learning_rate", "0.01", ["Learning rate", "got '0.01'"]),
    ("train_size", 9, ["Training digits", "from 10 to 60,000"]),
    ("train_size", 60_001, ["Training digits", "from 10 to 60,000"]),
    ("seed", -1, ["Seed", "from 0 to 2,147,483,647"]),
    ("seed", 2**31, ["Seed", "from 0 to 2,147,483,647"]),
]


@pytest.mark.parametrize("field,value,phrases", INVALID, ids=[f"{f}={v!r}" for f, v, _ in INVALID])
def test_invalid_field_raises_actionable_value_error(field, value, phrases):
    with pytest.raises(ValueError) as caught:
        TrainingConfig(**{field: value})
    message = str(caught.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"
    assert message.endswith(".")


@pytest.mark.parametrize(
    "field,value",
    [("code_size", 1), ("code_size", 784), ("epochs", 200), ("batch_size", 1), ("batch_size", 8192),
     ("learning_rate", 1.0), ("learning_rate", 1e-6), ("train_size", 10), ("train_size", 60_000),
     ("seed", 2**31 - 1), ("architecture", "deep_dense")],
)
def test_boundary_values_are_accepted(field, value):
    assert getattr(TrainingConfig(**{field: value}), field) == value


def test_validation_errors_on_a_namespace_maps_each_bad_field_to_its_message():
    values = dict(DEFAULTS, code_size=0, epochs=500, seed=-5)
    errors = validation_errors(SimpleNamespace(**values))
    assert set(errors) == {"code_size", "epochs", "seed"}
    assert "from 1 to 784" in errors["code_size"]
    assert "from 1 to 200" in errors["epochs"] and "got 500" in errors["epochs"]
    assert "got -5" in errors["seed"]
    assert "empty" in validation_errors(SimpleNamespace(**dict(DEFAULTS, epochs=None)))["epochs"]
    assert validation_errors(SimpleNamespace(**DEFAULTS)) == {}


def test_key_has_readable_prefix_and_is_pinned():
    config = TrainingConfig()
    assert re.fullmatch(r"dense-c49-e5-[0-9a-f]{8}", config.key)
    # Saved models are found by this key: it must not change between versions or processes.
    assert config.key == "dense-c49-e5-c555d526"
    assert TrainingConfig(architecture="deep_dense", code_size=2, epochs=30).key.startswith("deep_dense-c2-e30-")


def test_same_config_same_key():
    assert TrainingConfig().key == TrainingConfig(**DEFAULTS).key
    assert TrainingConfig(code_size=8, seed=3).key == TrainingConfig(seed=3, code_size=8).key


def test_equal_learning_rates_written_differently_share_one_key():
    as_int, as_float = TrainingConfig(learning_rate=1), TrainingConfig(learning_rate=1.0)
    assert as_int == as_float
    assert as_int.key == as_float.key
    assert isinstance(as_int.learning_rate, float)


CHANGES = {
    "architecture": "deep_dense",
    "code_size": 50,
    "epochs": 6,
    "batch_size": 128,
    "learning_rate": 2e-3,
    "train_size": 59_999,
    "seed": 1,
    "noise_kind": {"noise_kind": "masking", "noise_level": 0.3},  # kind and level only go together
    "noise_level": {"noise_kind": "gaussian", "noise_level": 0.1},
    "sparsity": 1e-3,
    "beta": {"architecture": "vae", "beta": 4.0},  # beta applies to a variational model only
    "contractive": 0.1,
}


def test_key_differs_for_any_field_change():
    assert set(CHANGES) == {field.name for field in dataclasses.fields(TrainingConfig)}
    base = TrainingConfig()
    keys = {base.key}
    for field, value in CHANGES.items():
        changed = base.with_changes(**(value if isinstance(value, dict) else {field: value}))
        assert changed != base
        assert changed.key != base.key, field
        keys.add(changed.key)
    assert len(keys) == len(CHANGES) + 1


def test_hashable_and_usable_as_dict_key():
    first, same, other = TrainingConfig(code_size=8), TrainingConfig(code_size=8), TrainingConfig(code_size=9)
    assert hash(first) == hash(same)
    table = {first: "a", other: "b"}
    assert table[same] == "a"
    assert len({first, same, other}) == 2


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainingConfig().epochs = 10  # type: ignore[misc]


def test_with_changes_validates():
    with pytest.raises(ValueError, match="Epochs"):
        TrainingConfig().with_changes(epochs=0)
    assert TrainingConfig().with_changes(epochs=7).epochs == 7


def test_to_dict_from_dict_round_trip_through_json():
    config = TrainingConfig(architecture="deep_dense", code_size=2, epochs=12, batch_size=64,
                            learning_rate=5e-4, train_size=1234, seed=42)
    values = config.to_dict()
    assert values == dict(architecture="deep_dense", code_size=2, epochs=12, batch_size=64,
                          learning_rate=5e-4, train_size=1234, seed=42, noise_kind="none", noise_level=0.0, sparsity=0.0,
                          beta=1.0, contractive=0.0)
    restored = TrainingConfig.from_dict(json.loads(json.dumps(values)))
    assert restored == config
    assert restored.key == config.key


def test_from_dict_ignores_unknown_fields_and_validates():
    values = dict(TrainingConfig().to_dict(), format=1, note="extra")
    assert TrainingConfig.from_dict(values) == TrainingConfig()
    with pytest.raises(ValueError, match="Batch size"):
        TrainingConfig.from_dict(dict(DEFAULTS, batch_size=-1))


def test_a_contractive_config_round_trips_is_named_and_keeps_old_keys():
    """The contractive weight: in the key only when set (older configs keep theirs), through
    JSON and back, named in the description and the short variants."""
    plain = TrainingConfig(architecture="deep_dense", code_size=8, epochs=3)
    assert plain.key == TrainingConfig.from_dict({k: v for k, v in plain.to_dict().items() if k != "contractive"}).key
    config = plain.with_changes(contractive=0.1)
    restored = TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config and restored.key == config.key != plain.key
    assert TrainingConfig(contractive=1).key == TrainingConfig(contractive=1.0).key
    assert "contractive (\u03bb 0.1)" in config.describe() and config.variants == ", contractive"
    assert config.training_options().contractive == 0.1


@pytest.mark.parametrize("architecture", ["conv", "vae"])
def test_the_contractive_option_is_refused_in_words_off_the_dense_models(architecture):
    values = SimpleNamespace(**dict(DEFAULTS, architecture=architecture, contractive=0.1))
    message = validation_errors(values)["contractive"]
    assert "dense" in message and "off" in message, message
    with pytest.raises(ValueError, match="contractive"):
        TrainingConfig(architecture=architecture, contractive=0.1)
    for bad in (-0.1, float("nan"), 101.0, "0.1"):
        assert "from 0 to 100" in validation_errors(SimpleNamespace(**dict(DEFAULTS, contractive=bad)))["contractive"]
    assert validation_errors(SimpleNamespace(**dict(DEFAULTS, architecture="deep_dense", contractive=3.0))) == {}
