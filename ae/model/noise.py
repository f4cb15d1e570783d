"""Input noise for denoising autoencoders: what a model is trained to undo.

A denoising model sees a corrupted digit and is scored against the clean one. Training draws
fresh noise for every batch inside the Keras graph (`ae.model.architectures`, `PixelNoise`); pages and
tests use `add_noise` here, a seeded numpy version of the same three kinds, to show noisy
inputs and to measure how reconstructions degrade as the input gets noisier.
"""
from __future__ import annotations

import numpy as np

NOISE_KINDS = {
    "none": "None (plain autoencoder)",
    "gaussian": "Gaussian (add, then clip to 0..1)",
    "masking": "Masking (pixels set to 0)",
    "salt_pepper": "Salt and pepper (pixels set to 0 or 1)",
}
LEVEL_MEANING = {
    "gaussian": "the noise's standard deviation",
    "masking": "the share of pixels set to 0",
    "salt_pepper": "the share of pixels set to 0 or 1",
}


def add_noise(images: np.ndarray, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """The images corrupted by `kind` noise at `level`, in 0..1, the same for the same seed."""
    images = np.asarray(images, dtype=np.float32)
    if kind == "none" or level <= 0:
        return images.copy()
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        noisy = images + rng.normal(0.0, level, images.shape).astype(np.float32)
    elif kind == "masking":
        noisy = np.where(rng.random(images.shape) < level, 0.0, images)
    elif kind == "salt_pepper":
        draw = rng.random(images.shape)
        noisy = np.where(draw < level / 2, 0.0, np.where(draw > 1 - level / 2, 1.0, images))
    else:
        raise ValueError(f"Unknown noise kind '{kind}'; choose one of: {', '.join(NOISE_KINDS)}.")
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)
