"""Autoencoder architectures, each built as three Keras models that share layers.

Keras is imported inside the builders, so reading the registry (the UI's choices, config
validation) never loads TensorFlow.

Every builder returns `AutoencoderModels(encoder, decoder, autoencoder)` with
autoencoder = decoder(encoder(x)), as the reference article builds it. Architectures live
in `ARCHITECTURES`: adding a convolutional, denoising, sparse or variational one is one
new entry there.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, NamedTuple

if TYPE_CHECKING:
    import keras

INPUT_SHAPE = (28, 28, 1)
PIXELS = 28 * 28
MAX_CODE_SIZE = PIXELS

# Building Keras models is not thread-safe (tensorflow #61298); every build takes this lock.
BUILD_LOCK = threading.RLock()


class AutoencoderModels(NamedTuple):
    encoder: "keras.Model"
    decoder: "keras.Model"
    autoencoder: "keras.Model"


@dataclass(frozen=True)
class Architecture:
    name: str
    label: str
    description: str
    build: Callable[[int], AutoencoderModels]


def _assemble(encoder: "keras.Model", decoder: "keras.Model") -> AutoencoderModels:
    import keras

    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    autoencoder = keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")
    return AutoencoderModels(encoder, decoder, autoencoder)


def build_dense(code_size: int) -> AutoencoderModels:
    """The article's model: 28x28x1 -> Flatten -> Dense(code, relu) -> Dense(784, sigmoid) -> Reshape."""
    import keras

    image = keras.Input(shape=INPUT_SHAPE, name="image")
    flat = keras.layers.Flatten(name="flatten")(image)
    code = keras.layers.Dense(code_size, activation="relu", name="code")(flat)
    encoder = keras.Model(image, code, name="encoder")

    code_input = keras.Input(shape=(code_size,), name="code_input")
    pixels = keras.layers.Dense(PIXELS, activation="sigmoid", name="pixels")(code_input)
    reconstruction = keras.layers.Reshape(INPUT_SHAPE, name="reconstruction")(pixels)
    decoder = keras.Model(code_input, reconstruction, name="decoder")
    return _assemble(encoder, decoder)


def build_deep_dense(code_size: int) -> AutoencoderModels:
    """Stacked encoder 784-256-128-code, mirrored decoder.

    The code layer is linear: with two or three code units a relu code often loses whole
    units to zero, which flattens the latent map; a linear code keeps it spread out.
    """
    import keras

    image = keras.Input(shape=INPUT_SHAPE, name="image")
    hidden = keras.layers.Flatten(name="flatten")(image)
    hidden = keras.layers.Dense(256, activation="relu", name="encoder_256")(hidden)
    hidden = keras.layers.Dense(128, activation="relu", name="encoder_128")(hidden)
    code = keras.layers.Dense(code_size, name="code")(hidden)
    encoder = keras.Model(image, code, name="encoder")

    code_input = keras.Input(shape=(code_size,), name="code_input")
    hidden = keras.layers.Dense(128, activation="relu", name="decoder_128")(code_input)
    hidden = keras.layers.Dense(256, activation="relu", name="decoder_256")(hidden)
    pixels = keras.layers.Dense(PIXELS, activation="sigmoid", name="pixels")(hidden)
    reconstruction = keras.layers.Reshape(INPUT_SHAPE, name="reconstruction")(pixels)
    decoder = keras.Model(code_input, reconstruction, name="decoder")
    return _assemble(encoder, decoder)


ARCHITECTURES: dict[str, Architecture] = {
    architecture.name: architecture
    for architecture in (
        Architecture(
            name="dense",
            label="Dense (article)",
            description="784 -> code (relu) -> 784 (sigmoid): the reference article's model.",
            build=build_dense,
        ),
        Architecture(
            name="deep_dense",
            label="Deep dense",
            description="784 -> 256 -> 128 -> code -> 128 -> 256 -> 784: a stacked encoder.",
            build=build_deep_dense,
        ),
    )
}


def build_models(architecture: str, code_size: int) -> AutoencoderModels:
    """Build fresh, untrained models; raises ValueError for an unknown architecture or size."""
    if architecture not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise ValueError(f"Unknown architecture '{architecture}'; choose one of: {known}.")
    if isinstance(code_size, bool) or not isinstance(code_size, int) or not 1 <= code_size <= MAX_CODE_SIZE:
        raise ValueError(f"Code size must be a whole number from 1 to {MAX_CODE_SIZE}; got {code_size!r}.")
    with BUILD_LOCK:
        return ARCHITECTURES[architecture].build(code_size)


def predict(model: "keras.Model", inputs, batch_size: int = 4096):
    """Run a model in inference mode in batches and return numpy.

    Calls the model directly rather than `model.predict`, which builds a new predict
    function per model and is slow for the small, frequent calls pages make.
    """
    import keras
    import numpy as np

    inputs = np.asarray(inputs, dtype=np.float32)
    if len(inputs) == 0:
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    outputs = [
        keras.ops.convert_to_numpy(model(inputs[start : start + batch_size], training=False))
        for start in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(outputs)
