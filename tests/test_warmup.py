"""`python -m ae.warmup` before a lecture: presets trained and saved, then left alone."""
import io

from ae.model.config import TrainingConfig
from ae.model.presets import PRESETS, Preset
from ae.warmup import warm_up_for_a_lecture

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
