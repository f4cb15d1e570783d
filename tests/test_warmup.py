"""`python -m ae.warmup` before a lecture: presets trained and saved, then left alone."""
import io

import numpy as np

from ae.model.config import TrainingConfig
from ae.model.presets import PRESETS, Preset
from ae.warmup import warm_up_for_a_lecture
from tests.conftest import wait_for_condition

TINY = [Preset("tiny", "A tiny one", "dense, code 4", TrainingConfig(code_size=4, epochs=1, train_size=500),
               "pages/latent.py"),
        Preset("tiny_vae", "A tiny VAE", "vae, code 2", TrainingConfig(architecture="vae", code_size=2, epochs=1,
                                                                        train_size=500), "pages/latent.py")]


def test_warm_up_trains_each_preset_once_with_a_progress_bar(app_env):
    out = io.StringIO()
    lines = warm_up_for_a_lecture(TINY, out=out, warm_maps=False)
    assert [line.split(":")[0] for line in lines] == ["A tiny one", "A tiny VAE"]
    assert all("trained and pinned, test BCE" in line for line in lines), lines
    assert "Training the presets" in out.getvalue() and "2.0/2 epochs" in out.getvalue()
    again = warm_up_for_a_lecture(TINY, out=io.StringIO(), warm_maps=False)
    assert all("saved already" in line for line in again), again
    from ae.jobs.manager import get_manager

    assert all(get_manager().get(preset.config.key).snapshot().pinned for preset in TINY)


def test_presets_are_valid_and_distinct():
    keys = [preset.config.key for preset in PRESETS]
    assert len(set(keys)) == len(keys) == 5
    assert {preset.config.architecture for preset in PRESETS} == {"dense", "conv", "vae"}
    assert any(preset.config.denoising for preset in PRESETS)


def test_a_warmed_up_preset_shows_its_reconstructions_and_reads_digits_in_a_later_server(app_env, dataset):
    """The lecture's server starts after `python -m ae.warmup` has ended: what the Train page's panel
    and the Your digit page need must come from the disk, not from the warm-up's memory."""
    from ae.analysis.your_digit import (READER_FILE, encode_training_digits, fit_code_classifier,
                                        load_digit_reader)
    from ae.jobs import manager as manager_module
    from ae.jobs.manager import get_manager
    from ae.model.architectures import predict
    from ae.training.snapshot import panel_inputs
    from tests.test_pages import assert_clean, open_page, texts

    preset = TINY[0]
    warm_up_for_a_lecture([preset], out=io.StringIO(), warm_maps=False)
    warm = get_manager()
    folder = warm.store.entry_dir(preset.config.key)
    saved = warm.get(preset.config.key).snapshot()
    reader = load_digit_reader(folder, saved.saved_at)
    assert reader is not None, "the training process saved no digit reader with the model"
    models = warm.get(preset.config.key).models()
    codes = encode_training_digits(models.encoder, dataset.x_train)
    np.testing.assert_allclose(reader.classifier.probabilities(codes[:50]),
                               fit_code_classifier(codes, dataset.y_train).probabilities(codes[:50]), atol=1e-6)
    np.testing.assert_allclose(reader.gaussian.mean, codes.mean(axis=0), rtol=1e-4, atol=1e-5)

    (folder / READER_FILE).unlink()  # a preset saved before readers were: warm-up makes its reader
    again = warm_up_for_a_lecture([preset], out=io.StringIO(), warm_maps=False)
    assert "saved already, pinned and its digit reader made" in again[0], again
    assert load_digit_reader(folder, saved.saved_at) is not None

    with manager_module._managers_lock:  # warm-up ends: the server starts a training service of its own
        manager_module._managers.pop(str(warm.store.root)).close()
    later = get_manager()
    wait_for_condition(lambda: later.get(preset.config.key) is not None, 60)
    snapshot = later.get(preset.config.key).snapshot()
    assert snapshot.panel_epoch == 1.0 and snapshot.panel_reconstructions.shape == (16, 28, 28)
    expected = predict(models.autoencoder, panel_inputs(dataset.test_images, dataset.y_test, preset.config)[1])[..., 0]
    np.testing.assert_allclose(snapshot.panel_reconstructions, expected, atol=2e-3)  # float16 in the replay

    app = open_page("pages/train.py")
    assert_clean(app)
    shown = texts(app)
    assert "Reconstructions after 1.00 epochs" in shown and "Reconstructions appear once training starts" not in shown
