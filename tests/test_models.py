"""ae.model.architectures: shapes, the reference parameter count, shared layers, the registry and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from ae.model.data import load_dataset
from ae.model.architectures import ARCHITECTURES, MAX_CODE_SIZE, build_models, predict


@pytest.fixture(scope="module")
def digits(small_mnist_path) -> np.ndarray:
    return load_dataset(small_mnist_path).test_images[:5]


@pytest.mark.parametrize("code_size", [1, 2, 49, MAX_CODE_SIZE])
def test_dense_shapes(code_size, digits):
    encoder, decoder, autoencoder = build_models("dense", code_size)
    assert encoder.input_shape == (None, 28, 28, 1)
    assert encoder.output_shape == (None, code_size)
    assert decoder.input_shape == (None, code_size)
    assert decoder.output_shape == (None, 28, 28, 1)
    assert autoencoder.input_shape == (None, 28, 28, 1)
    assert autoencoder.output_shape == (None, 28, 28, 1)

    codes = predict(encoder, digits)
    assert codes.shape == (5, code_size)
    assert (codes >= 0).all()  # relu code
    images = predict(decoder, codes)
    assert images.shape == (5, 28, 28, 1)
    assert ((images > 0) & (images < 1)).all()  # sigmoid output
    assert predict(autoencoder, digits).shape == (5, 28, 28, 1)


def test_reference_model_has_77665_parameters():
    encoder, decoder, autoencoder = build_models("dense", 49)
    assert autoencoder.count_params() == 77_665
    assert encoder.count_params() == 784 * 49 + 49
    assert decoder.count_params() == 49 * 784 + 784


def test_autoencoder_shares_weights_with_encoder_and_decoder():
    encoder, decoder, autoencoder = build_models("dense", 8)
    shared = {id(weight) for weight in autoencoder.weights}
    assert {id(weight) for weight in encoder.weights} <= shared
    assert {id(weight) for weight in decoder.weights} <= shared
    assert len(autoencoder.weights) == len(encoder.weights) + len(decoder.weights)


def test_autoencoder_equals_decoder_of_encoder(digits):
    encoder, decoder, autoencoder = build_models("dense", 16)
    direct = predict(autoencoder, digits)
    chained = predict(decoder, predict(encoder, digits))
    np.testing.assert_allclose(direct, chained, rtol=1e-5, atol=1e-6)


def test_changing_encoder_weights_changes_autoencoder(digits):
    encoder, decoder, autoencoder = build_models("dense", 16)
    before = predict(autoencoder, digits)
    assert not np.allclose(before[0], before[1])
    code_layer = encoder.get_layer("code")
    code_layer.set_weights([np.zeros_like(w) for w in code_layer.get_weights()])
    after = predict(autoencoder, digits)
    # A zero code makes every image decode to the same picture: sigmoid of the decoder bias.
    np.testing.assert_allclose(after[0], after[1], atol=1e-7)
    assert not np.allclose(before, after)


def test_each_build_is_fresh():
    first = build_models("dense", 4)
    second = build_models("dense", 4)
    assert not {id(w) for w in first.autoencoder.weights} & {id(w) for w in second.autoencoder.weights}


@pytest.mark.parametrize("code_size", [2, 49])
def test_deep_dense_builds(code_size, digits):
    encoder, decoder, autoencoder = build_models("deep_dense", code_size)
    assert encoder.output_shape == (None, code_size)
    assert decoder.output_shape == (None, 28, 28, 1)
    expected = (
        (784 * 256 + 256) + (256 * 128 + 128) + (128 * code_size + code_size)
        + (code_size * 128 + 128) + (128 * 256 + 256) + (256 * 784 + 784)
    )
    assert autoencoder.count_params() == expected
    codes = predict(encoder, digits)
    assert codes.shape == (5, code_size)
    np.testing.assert_allclose(predict(autoencoder, digits), predict(decoder, codes), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("code_size", [0, -3, MAX_CODE_SIZE + 1, 2.5, 49.0, True, False, "49", None])
def test_bad_code_size_raises(code_size):
    with pytest.raises(ValueError, match="Code size must be a whole number from 1 to 784"):
        build_models("dense", code_size)


@pytest.mark.parametrize("architecture", ["rbm", "", "Dense", None])
def test_unknown_architecture_raises(architecture):
    with pytest.raises(ValueError, match="Unknown architecture") as caught:
        build_models(architecture, 2)
    assert "dense, deep_dense" in str(caught.value)


def test_registry_lists_both_architectures():
    assert list(ARCHITECTURES) == ["dense", "deep_dense", "conv", "vae"]
    for name, architecture in ARCHITECTURES.items():
        assert architecture.name == name
        assert architecture.label and architecture.description
        assert callable(architecture.build)


def test_predict_batches_and_empty_input(digits):
    autoencoder = build_models("dense", 3).autoencoder
    whole = predict(autoencoder, digits)
    np.testing.assert_allclose(predict(autoencoder, digits, batch_size=2), whole, rtol=1e-5, atol=1e-6)
    empty = predict(autoencoder, digits[:0])
    assert empty.shape == (0, 28, 28, 1)


@pytest.mark.parametrize("architecture", [name for name, spec in ARCHITECTURES.items() if spec.contractive])
def test_a_contractive_model_shares_the_plain_ones_weights_and_outputs(architecture, digits, tmp_path):
    """The penalty owns no weights: the same parameters, shared with the encoder, the same
    reconstruction as decoder(encoder(x)), and its saved weights load into a fresh copy."""
    from ae.model.architectures import TrainingOptions

    encoder, decoder, autoencoder = build_models(architecture, 8, TrainingOptions(contractive=0.1))
    assert autoencoder.count_params() == build_models(architecture, 8).autoencoder.count_params()
    assert {id(w) for w in autoencoder.weights} == {id(w) for w in encoder.weights + decoder.weights}
    assert len(autoencoder.weights) == len(encoder.weights) + len(decoder.weights)
    np.testing.assert_allclose(predict(autoencoder, digits), predict(decoder, predict(encoder, digits)), atol=1e-6)
    autoencoder.save_weights(tmp_path / "contractive.weights.h5")
    again = build_models(architecture, 8, TrainingOptions(contractive=0.1))
    again.autoencoder.load_weights(tmp_path / "contractive.weights.h5")
    np.testing.assert_allclose(predict(again.autoencoder, digits), predict(autoencoder, digits), atol=1e-6)


def test_only_the_dense_models_are_contractive():
    assert {name for name, spec in ARCHITECTURES.items() if spec.contractive} == {"dense", "deep_dense"}
