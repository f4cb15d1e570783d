"""Named presets: the models a lecture shows, one click each on Home.

Each preset is a plain `TrainingConfig`; a saved model with the same config opens at once, so
`python -m ae.warmup` trains them all ahead of a lecture and nobody waits on stage.
"""
from __future__ import annotations

from dataclasses import dataclass

from ae.model.config import TrainingConfig


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    description: str
    config: TrainingConfig
    page: str  # where the model is best seen


PRESETS = (
    Preset("article", "The article's model", "dense, code 49, 10 epochs: the worked example",
           TrainingConfig(code_size=49, epochs=10), "pages/reconstructions.py"),
    Preset("map", "A 2-D code for the map", "dense, code 2, 10 epochs: the codes are the map",
           TrainingConfig(code_size=2, epochs=10), "pages/latent.py"),
    Preset("conv", "Convolutional", "conv 32-64, code 16, 3 epochs",
           TrainingConfig(architecture="conv", code_size=16, epochs=3), "pages/reconstructions.py"),
    Preset("vae", "A 2-D VAE", "variational, code 2, 10 epochs: a map to generate from",
           TrainingConfig(architecture="vae", code_size=2, epochs=10), "pages/latent.py"),
    Preset("denoising", "Denoising", "dense, code 32, 10 epochs, trained on digits with 30% of pixels masked",
           TrainingConfig(code_size=32, epochs=10, noise_kind="masking", noise_level=0.3), "pages/reconstructions.py"),
)
PRESETS_BY_NAME = {preset.name: preset for preset in PRESETS}
