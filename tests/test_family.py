"""The autoencoder family: the convolutional architecture, denoising (input noise) and sparse
(L1 on the code) training options, the digit-by-unit activity, and models saved before the
options existed. Real Keras on a real MNIST slice.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from ae.model.config import TrainingConfig, validation_errors
from ae.model.data import load_dataset
from ae.analysis.metrics import code_activity, evaluate_reconstructions
from ae.model.architectures import ARCHITECTURES, TrainingOptions, build_models, predict
from ae.model.noise import NOISE_KINDS, add_noise
from ae.storage.store import ModelStore
from ae.training.worker import pixel_binary_crossentropy

OLD_MODELS = Path(__file__).parent / "data" / "models-before-training-options"


def train_a_little(models, images, steps: int = 30) -> list[float]:
    models.autoencoder.compile(optimizer=keras.optimizers.Adam(1e-3), loss=pixel_binary_crossentropy)
    history = models.autoencoder.fit(images, images, batch_size=64, epochs=3, steps_per_epoch=steps // 3, verbose=0)
    return history.history["loss"]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_builds_agrees_on_shapes_and_learns(architecture, dataset):
    encoder, decoder, autoencoder = models = build_models(architecture, 8)
    assert encoder.output_shape == (None, 8) and decoder.input_shape == (None, 8)
    assert decoder.output_shape == autoencoder.output_shape == (None, 28, 28, 1)
    images = dataset.train_images[:1000]
    np.testing.assert_allclose(predict(autoencoder, images[:4]), predict(decoder, predict(encoder, images[:4])), atol=1e-5)
    losses = train_a_little(models, images)
    assert losses[-1] < losses[0], losses


def test_the_convolutional_model_is_two_strided_convolutions_mirrored():
    encoder, decoder, _ = build_models("conv", 16)
    assert [layer.name for layer in encoder.layers if "conv" in layer.name] == ["conv_32", "conv_64"]
    assert encoder.get_layer("conv_64").output.shape[1:] == (7, 7, 64)
    assert [layer.name for layer in decoder.layers if "deconv" in layer.name] == ["deconv_32", "deconv_1"]


@pytest.mark.parametrize("kind", [kind for kind in NOISE_KINDS if kind != "none"])
def test_noise_keeps_pixels_in_range_and_is_seeded(kind, dataset):
    images = dataset.test_images[:50]
    noisy = add_noise(images, kind, 0.4, seed=3)
    assert noisy.shape == images.shape and noisy.dtype == np.float32
    assert noisy.min() >= 0 and noisy.max() <= 1
    np.testing.assert_array_equal(noisy, add_noise(images, kind, 0.4, seed=3))
    assert not np.array_equal(noisy, add_noise(images, kind, 0.4, seed=4))
    assert not np.array_equal(noisy, images)
    np.testing.assert_array_equal(add_noise(images, kind, 0.0, seed=3), images)


def test_masking_hides_about_the_level_of_pixels(dataset):
    images = np.ones((200, 28, 28, 1), dtype=np.float32)
    assert abs(1 - add_noise(images, "masking", 0.3, seed=1).mean() - 0.3) < 0.01


@pytest.mark.parametrize("kind", ["gaussian", "masking", "salt_pepper"])
def test_training_noise_matches_the_pages_noise_and_only_acts_while_training(kind, dataset):
    models = build_models("dense", 8, TrainingOptions(noise_kind=kind, noise_level=0.3))
    noise = models.autoencoder.get_layer("training_noise")
    images = dataset.test_images[:200]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(noise(images, training=False)), images)
    trained_view = keras.ops.convert_to_numpy(noise(images, training=True))
    page_view = add_noise(images, kind, 0.3, seed=0)
    assert trained_view.min() >= 0 and trained_view.max() <= 1
    # Same kind and level: the same amount of change, drawn independently.
    assert abs(np.abs(trained_view - images).mean() - np.abs(page_view - images).mean()) < 0.01


def test_a_denoising_model_learns_noisy_to_clean(dataset):
    options = TrainingOptions(noise_kind="masking", noise_level=0.5)
    models = build_models("dense", 32, options)
    images = dataset.train_images
    models.autoencoder.compile(optimizer=keras.optimizers.Adam(3e-3), loss=pixel_binary_crossentropy)
    plain = build_models("dense", 32)
    plain.autoencoder.compile(optimizer=keras.optimizers.Adam(3e-3), loss=pixel_binary_crossentropy)
    keras.utils.set_random_seed(0)
    models.autoencoder.fit(images, images, batch_size=64, epochs=8, verbose=0)
    keras.utils.set_random_seed(0)
    plain.autoencoder.fit(images, images, batch_size=64, epochs=8, verbose=0)
    noisy = add_noise(dataset.test_images, "masking", 0.5, seed=9)
    denoised = evaluate_reconstructions(dataset, predict(models.autoencoder, noisy)).bce
    plain_on_noisy = evaluate_reconstructions(dataset, predict(plain.autoencoder, noisy)).bce
    assert denoised < plain_on_noisy, (denoised, plain_on_noisy)


def test_a_sparse_model_pays_for_active_units_and_uses_fewer(dataset):
    images = dataset.train_images
    keras.utils.set_random_seed(1)
    sparse = build_models("deep_dense", 32, TrainingOptions(sparsity=1e-2))
    train_a_little(sparse, images, steps=90)
    keras.utils.set_random_seed(1)
    plain = build_models("deep_dense", 32)
    train_a_little(plain, images, steps=90)
    assert sparse.autoencoder.losses, "the L1 penalty is part of the training loss"
    labels = dataset.y_test
    sparse_share = code_activity(predict(sparse.encoder, dataset.test_images), labels).near_zero_share
    plain_share = code_activity(predict(plain.encoder, dataset.test_images), labels).near_zero_share
    assert sparse_share > plain_share, (sparse_share, plain_share)


def test_code_activity_by_hand():
    codes = np.array([[1.0, 0.0, 0.0], [3.0, 0.0, 0.001], [0.0, 2.0, 0.0], [0.0, -4.0, 0.0]])
    labels = np.array([0, 0, 1, 1])
    activity = code_activity(codes, labels)
    np.testing.assert_allclose(activity.digit_means[0], [2.0, 0.0, 0.0005])
    np.testing.assert_allclose(activity.digit_means[1], [0.0, 3.0, 0.0])
    assert activity.digit_means[2:].sum() == 0  # digits with no codes
    # Unit 0 is off in 2 of 4, unit 1 in 2 of 4, unit 2 (largest 0.001) in 3 of 4 images.
    assert activity.near_zero_share == pytest.approx(7 / 12)
    wide = code_activity(np.random.default_rng(0).random((100, 200)), np.arange(100) % 10, max_units=64)
    assert len(wide.units) == 64 and wide.total_units == 200 and list(wide.units) == sorted(wide.units)


def test_options_are_checked_in_words_and_only_go_together():
    base = TrainingConfig().to_dict()
    cases = [
        (dict(noise_kind="gaussian", noise_level=0.0), "noise_level", "needs a noise level above 0"),
        (dict(noise_kind="none", noise_level=0.3), "noise_level", "needs a noise kind"),
        (dict(noise_kind="blur", noise_level=0.3), "noise_kind", "Unknown noise kind 'blur'"),
        (dict(noise_kind="masking", noise_level=1.5), "noise_level", "from 0 to 1"),
        (dict(sparsity=-0.1), "sparsity", "from 0 to 1"),
        (dict(sparsity=float("nan")), "sparsity", "from 0 to 1"),
    ]
    from types import SimpleNamespace

    for changes, field, phrase in cases:
        errors = validation_errors(SimpleNamespace(**{**base, **changes}))
        assert field in errors and phrase in errors[field], (changes, errors)
    config = TrainingConfig(noise_kind="salt_pepper", noise_level=0.2, sparsity=1e-3)
    assert "denoising (salt and pepper noise 0.2)" in config.describe() and "sparse (L1 0.001)" in config.describe()
    assert config.key != TrainingConfig().key and config.denoising


def test_models_saved_before_the_options_keep_their_keys_and_load(tmp_path, small_mnist_path):
    """A model saved by the code before noise and sparsity existed (tests/data, trained on the
    same MNIST slice): its key is unchanged, it is listed, and it reconstructs as it did."""
    root = tmp_path / "store"
    shutil.copytree(OLD_MODELS, root)
    store = ModelStore(root)
    (record,) = store.records()
    config = record["config"]
    assert config.key == "dense-c2-e1-8a80a48c" == next(OLD_MODELS.iterdir()).name
    assert config.noise_kind == "none" and config.sparsity == 0.0
    models = store.load_models(config)
    dataset = load_dataset(small_mnist_path)
    bce = evaluate_reconstructions(dataset, predict(models.autoencoder, dataset.test_images)).bce
    assert bce == pytest.approx(record["test_metrics"].bce, abs=1e-5)


def test_the_kl_term_matches_a_hand_computation():
    from ae.model.architectures import kl_divergence

    z_mean = np.array([[1.0, 2.0], [0.0, 0.0]])
    z_log_var = np.array([[0.0, np.log(4.0)], [0.0, 0.0]])
    kl = keras.ops.convert_to_numpy(kl_divergence(z_mean, z_log_var))
    # -1/2 sum(1 + log s^2 - m^2 - s^2): (1 + 0 - 1 - 1) + (1 + ln 4 - 4 - 4) = -8 + ln 4; the prior itself: 0.
    np.testing.assert_allclose(kl, [4.0 - np.log(2.0), 0.0], rtol=1e-6)


def test_a_variational_model_samples_while_training_and_adds_beta_kl(dataset):
    models = build_models("vae", 2, TrainingOptions(beta=3.0))
    sampling = models.autoencoder.get_layer("sampling")
    moments = models.autoencoder.get_layer("encoder_moments")
    images = dataset.test_images[:64]
    z_mean, z_log_var = (keras.ops.convert_to_numpy(t) for t in moments(images))
    np.testing.assert_allclose(predict(models.encoder, images), z_mean, atol=1e-5)  # pages map the means
    np.testing.assert_allclose(keras.ops.convert_to_numpy(sampling([z_mean, z_log_var], training=False)), z_mean)
    assert not np.allclose(keras.ops.convert_to_numpy(sampling([z_mean, z_log_var], training=True)), z_mean)
    expected = 3.0 * (-0.5 * np.sum(1 + z_log_var - z_mean**2 - np.exp(z_log_var), axis=-1)).mean() / 784
    assert float(keras.ops.convert_to_numpy(sampling.losses[-1])) == pytest.approx(expected, rel=1e-4)


def test_beta_is_for_variational_models_only():
    from types import SimpleNamespace

    base = TrainingConfig().to_dict()
    assert "variational model only" in validation_errors(SimpleNamespace(**{**base, "beta": 4.0}))["beta"]
    assert "above 0" in validation_errors(SimpleNamespace(**{**base, "architecture": "vae", "beta": 0.0}))["beta"]
    assert validation_errors(SimpleNamespace(**{**base, "architecture": "vae", "beta": 4.0})) == {}
    assert TrainingConfig(architecture="vae", beta=4.0).key != TrainingConfig(architecture="vae").key


def test_a_variational_job_records_its_kl_term_each_epoch(managers, cache_dir):
    from tests.test_training import wait_until_done

    manager = managers(cache_dir)
    job = manager.request(TrainingConfig(architecture="vae", code_size=2, epochs=2, batch_size=64, train_size=1000))
    snapshot = wait_until_done(job)
    assert snapshot.state.value == "finished", snapshot.error
    assert len(snapshot.history.kl_loss) == len(snapshot.history.val_loss) == 2
    assert all(0 < kl < val for kl, val in zip(snapshot.history.kl_loss, snapshot.history.val_loss))
    restarted = managers(cache_dir)  # read back from disk
    assert restarted.get(job.key).snapshot().history.kl_loss == pytest.approx(snapshot.history.kl_loss)


def numeric_jacobian_norms(encoder, images) -> np.ndarray:
    """||d code / d pixels||_F^2 per image by automatic differentiation, one backward pass per
    code unit: the slow, obviously right way."""
    import tensorflow as tf

    inputs = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        codes = encoder(inputs, training=False)
    jacobian = tape.batch_jacobian(codes, inputs).numpy()
    return np.sum(jacobian.reshape(len(images), codes.shape[-1], -1) ** 2, axis=-1).sum(axis=-1)


def tiny_encoder(activations):
    image = keras.Input(shape=(28, 28, 1))
    hidden = keras.layers.Flatten()(image)
    for units, activation in zip((6, 5, 3), activations):
        hidden = keras.layers.Dense(units, activation=activation)(hidden)
    return keras.Model(image, hidden)


@pytest.mark.parametrize("encoder_of", [
    lambda: build_models("dense", 7).encoder,  # the closed form: sum_j 1[h_j > 0] ||W_j||^2
    lambda: build_models("deep_dense", 5).encoder,
    lambda: tiny_encoder(["sigmoid"]),  # one layer: sum_j (h_j (1 - h_j))^2 ||W_j||^2
    lambda: tiny_encoder(["tanh", "sigmoid", "linear"]),
], ids=["dense", "deep_dense", "sigmoid", "tanh-sigmoid-linear"])
def test_the_contractive_penalty_is_the_jacobians_squared_frobenius_norm(encoder_of, dataset):
    from ae.model.architectures import encoder_jacobian_norms

    keras.utils.set_random_seed(3)
    encoder = encoder_of()
    images = np.concatenate([dataset.test_images[:6], np.random.default_rng(0).random((2, 28, 28, 1), np.float32)])
    codes, norms = (keras.ops.convert_to_numpy(t) for t in encoder_jacobian_norms(encoder, images))
    np.testing.assert_allclose(codes, predict(encoder, images), atol=1e-5)
    expected = numeric_jacobian_norms(encoder, images)
    assert expected.min() > 0
    np.testing.assert_allclose(norms, expected, rtol=1e-4)


def test_a_contractive_model_adds_lambda_times_the_mean_norm_to_its_loss(dataset):
    from ae.model.architectures import mean_jacobian_norm

    models = build_models("deep_dense", 8, TrainingOptions(contractive=0.5))
    plain = build_models("deep_dense", 8)
    plain.autoencoder.set_weights(models.autoencoder.get_weights())  # the penalty owns no weights
    images = dataset.test_images[:64]
    for each in (models, plain):
        each.autoencoder.compile(loss=pixel_binary_crossentropy)
    added = models.autoencoder.evaluate(images, images, batch_size=64, verbose=0) \
        - plain.autoencoder.evaluate(images, images, batch_size=64, verbose=0)
    norm = mean_jacobian_norm(models.encoder, images)
    assert added == pytest.approx(0.5 * norm / 784, rel=1e-3)
    np.testing.assert_allclose(predict(models.autoencoder, images), predict(plain.autoencoder, images), atol=1e-5)
    assert mean_jacobian_norm(build_models("conv", 8).encoder, images) is None
    with pytest.raises(ValueError, match="dense layers"):
        build_models("conv", 8, TrainingOptions(contractive=0.1))


def test_training_with_the_contractive_penalty_lowers_the_jacobians_norm(dataset):
    from ae.model.architectures import mean_jacobian_norm

    images, norms, errors = dataset.train_images, {}, {}
    for weight in (0.0, 1.0):
        keras.utils.set_random_seed(2)
        models = build_models("dense", 32, TrainingOptions(contractive=weight))
        train_a_little(models, images, steps=90)
        norms[weight] = mean_jacobian_norm(models.encoder, dataset.test_images)
        errors[weight] = evaluate_reconstructions(dataset, predict(models.autoencoder, dataset.test_images)).bce
    assert norms[1.0] < 0.5 * norms[0.0], norms
    assert errors[1.0] < 0.3, errors  # it still reconstructs


def test_a_contractive_job_trains_saves_and_loads_with_its_penalty(managers, cache_dir, dataset):
    """Through the real training process (its XLA-compiled steps) and the store: the saved
    model loads as it was, its encoder as contractive as the one trained."""
    from ae.model.architectures import mean_jacobian_norm
    from tests.test_training import wait_until_done

    manager = managers(cache_dir)
    config = TrainingConfig(architecture="deep_dense", code_size=4, epochs=1, batch_size=64, train_size=1000,
                            contractive=0.3)
    snapshot = wait_until_done(manager.request(config))
    assert snapshot.state.value == "finished", snapshot.error
    models = manager.store.load_models(config)
    assert models.autoencoder.get_layer("contractive_encoder").penalty_weight == 0.3
    bce = evaluate_reconstructions(dataset, predict(models.autoencoder, dataset.test_images)).bce
    assert bce == pytest.approx(snapshot.test_metrics.bce, abs=1e-5)
    assert mean_jacobian_norm(models.encoder, dataset.test_images) > 0


def test_the_train_page_takes_the_contractive_weight_from_the_url_and_refuses_it_in_words(app_env):
    """A shared link (`/train?cae=0.1`) opens with the weight set; off the dense models it gets
    a sentence and Train waits; on them, Train may go."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT
    from tests.test_pages import assert_clean, texts

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.query_params["cae"] = "0.1"
    app.run()
    app.switch_page("pages/train.py").run()
    assert_clean(app)
    assert app.select_slider(key="cae").value == 0.1 and not app.error
    app.selectbox(key="arch").select("conv").run()
    assert any("contractive penalty is for the dense autoencoders" in e.value and "not Convolutional" in e.value
               for e in app.error), texts(app)
    assert app.button(key="train_button").disabled
    app.selectbox(key="arch").select("deep_dense").run()
    assert_clean(app)
    assert not app.error and not app.button(key="train_button").disabled
    app.select_slider(key="cae").set_value(0.3).run()
    assert app.select_slider(key="cae").value == 0.3 and not app.error


def test_the_noise_chart_draws_a_contractive_curve_beside_the_plain_and_denoising_ones(app_env, small_mnist_path):
    """Three trained dense models of one code size; the contractive one's page draws all three
    curves, and each one's Jacobian norm, the contractive one's the smallest."""
    import json
    import re

    from ae.jobs.manager import get_manager
    from tests.conftest import wait_for_condition
    from tests.test_pages import assert_clean, open_page, select_model, texts

    manager = get_manager(load_dataset(small_mnist_path), app_env)
    small = dict(code_size=8, epochs=2, batch_size=64, train_size=2000)
    jobs = [manager.request(TrainingConfig(**small, **options))
            for options in (dict(), dict(noise_kind="masking", noise_level=0.3), dict(contractive=1.0))]
    wait_for_condition(lambda: all(not job.snapshot().is_active for job in jobs), 300)
    assert [job.snapshot().state.value for job in jobs] == ["finished"] * 3
    app = open_page("pages/reconstructions.py")
    select_model(app, "reconstructions_model", "code 8 · dense, contractive ·")
    assert_clean(app)
    names = [trace["name"] for trace in json.loads(app.get("plotly_chart")[-1].proto.spec)["data"]]
    assert names == ["this model: contractive (\u03bb 1)", "plain, same size",
                     "denoising (masking 0.3), same size"], names
    norms = dict(re.findall(r"(plain|contractive \(\u03bb 1\)|denoising \(masking 0\.3\)) ([\d,.]+)",
                            texts(app).split("Jacobian")[1]))
    assert set(norms) == {"plain", "contractive (\u03bb 1)", "denoising (masking 0.3)"}, texts(app)
    assert float(norms["contractive (\u03bb 1)"].replace(",", "")) < float(norms["plain"].replace(",", "")), norms


def test_the_family_benchmark_has_a_contractive_row_per_dense_model():
    from ae.bench import FAMILY_CONTRACTIVE, family_rows

    rows = family_rows()
    contractive = {label: settings for label, settings in rows.items() if "contractive" in settings}
    assert {settings["architecture"] for settings in contractive.values()} == {"dense", "deep_dense"}
    assert all(settings["contractive"] == FAMILY_CONTRACTIVE for settings in contractive.values())
    assert "Dense (article), contractive (\u03bb 0.1)" in contractive
    assert family_rows(contractive_only=True) == contractive
    for settings in rows.values():  # every row is a config the app accepts
        TrainingConfig(code_size=8, **settings)
