"""Autoencoder architectures, each built as three Keras models that share layers.

Keras is imported inside the builders, so reading the registry (the UI's choices, config
validation) never loads TensorFlow.

Every builder returns `AutoencoderModels(encoder, decoder, autoencoder)` with
autoencoder = decoder(encoder(x)), as the reference article builds it. Architectures live
in `ARCHITECTURES`: adding one is one new entry there. Denoising and sparsity are training
options of any architecture (`TrainingOptions`), not separate networks; so is the contractive
penalty, for the dense encoders.
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
    build: Callable[[int], tuple["keras.Model", "keras.Model"]]  # code size -> (encoder, decoder)
    variational: bool = False  # the encoder gives [mean, log-variance]; the code is sampled
    xla: bool = True  # compile the training step with XLA (slower for convolutions on a CPU: measured)
    contractive: bool = False  # a stack of dense layers: its Jacobian's norm has a cheap exact form


@dataclass(frozen=True)
class TrainingOptions:
    """What changes training but not the weights: input noise (a denoising model), an L1
    penalty on the code (a sparse model) and one on the encoder's Jacobian (a contractive model).
    They act only while training, through layers with no weights of their own."""

    noise_kind: str = "none"
    noise_level: float = 0.0
    sparsity: float = 0.0  # L1 penalty on the code's activations, per unit and image
    beta: float = 1.0  # weight of the KL term, for a variational model
    contractive: float = 0.0  # weight of the squared Frobenius norm of the encoder's Jacobian


def _assemble(encoder: "keras.Model", decoder: "keras.Model", options: TrainingOptions,
              variational: bool = False) -> AutoencoderModels:
    """autoencoder = decoder(encoder(x)), with the training-only noise before the encoder and
    the sparsity penalty on the code, when the options ask for them."""
    import keras

    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    corrupted = inputs
    if options.noise_kind != "none" and options.noise_level > 0:
        corrupted = _pixel_noise_layer()(options.noise_kind, options.noise_level, name="training_noise")(inputs)
    if variational:  # the encoder gives a mean and a log-variance
        moments = encoder
        code = _sampling_layer()(options.beta, name="sampling")(moments(corrupted))
        encoder = keras.Model(moments.inputs[0], moments.outputs[0], name="encoder")  # pages use the means
    elif options.contractive > 0:
        code = _contractive_layer()(encoder, options.contractive, name="contractive_encoder")(corrupted)
    else:
        code = encoder(corrupted)
    if options.sparsity > 0:
        code = keras.layers.ActivityRegularization(l1=options.sparsity, name="code_sparsity")(code)
    autoencoder = keras.Model(inputs, decoder(code), name="autoencoder")
    return AutoencoderModels(encoder, decoder, autoencoder)


_PIXEL_NOISE = []
_SAMPLING = []
_CONTRACTIVE = []

# d act(z) / dz of the activations a dense encoder may use, from z and act(z).
_SLOPES = {
    "linear": lambda ops, z, h: ops.ones_like(z),
    "relu": lambda ops, z, h: ops.cast(z > 0, z.dtype),
    "sigmoid": lambda ops, z, h: h * (1 - h),
    "tanh": lambda ops, z, h: 1 - ops.square(h),
}


def _dense_stack(encoder: "keras.Model") -> list:
    """The encoder's Dense layers in order, if it is Flatten then Dense layers with activations
    whose slope we know; else ValueError in words."""
    import keras

    stack = []
    for layer in encoder.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Flatten)):
            continue
        activation = keras.activations.serialize(layer.activation) if isinstance(layer, keras.layers.Dense) else None
        if activation not in _SLOPES:
            raise ValueError(f"The contractive penalty needs an encoder of dense layers ({', '.join(_SLOPES)}); "
                             f"layer {layer.name!r} is not one.")
        stack.append(layer)
    return stack


def encoder_jacobian_norms(encoder: "keras.Model", images):
    """(code, ||J(x)||_F^2 per image): the code of each image and the squared Frobenius norm of
    the encoder's Jacobian d code / d pixels there, exact, for a stack of dense layers.

    For h_k = act_k(h_(k-1) K_k + b_k), J = D_n K_n^T ... D_1 K_1^T with D_k the activations'
    slopes. One layer (the article's model): ||J||^2 = sum_j d_j^2 ||K_j||^2, relu's d_j being
    1 where unit j is on. Deeper: the product from the code's side, per image, down to the
    first layer, whose 784 inputs enter only through the Gram matrix K_1^T K_1, so a step costs
    a few times a plain one rather than one backward pass per code unit.
    """
    import keras

    ops = keras.ops
    stack = _dense_stack(encoder)
    hidden = ops.reshape(images, (ops.shape(images)[0], -1))
    slopes = []
    for layer in stack:
        before = ops.matmul(hidden, layer.kernel) + layer.bias
        hidden = layer.activation(before)
        slopes.append(_SLOPES[keras.activations.serialize(layer.activation)](ops, before, hidden))
    first = stack[0].kernel
    gram = ops.matmul(ops.transpose(first), first)  # K_1^T K_1: the first layer's units' inner products
    if len(stack) == 1:
        return hidden, ops.sum(ops.square(slopes[0]) * ops.diagonal(gram), axis=-1)
    product = slopes[-1][:, :, None] * ops.transpose(stack[-1].kernel)[None]  # D_n K_n^T: (images, code, units)
    for layer, slope in zip(stack[-2:0:-1], slopes[-2:0:-1]):
        product = ops.matmul(product * slope[:, None, :], ops.transpose(layer.kernel))
    product = product * slopes[0][:, None, :]
    return hidden, ops.sum(ops.matmul(product, gram) * product, axis=(1, 2))


def mean_jacobian_norm(encoder: "keras.Model", images, batch_size: int = 500) -> float | None:
    """The mean ||J(x)||_F^2 of a dense encoder over `images` (what a contractive model keeps
    small), or None for an encoder that is not a stack of dense layers."""
    import keras
    import numpy as np

    try:
        _dense_stack(encoder)
    except ValueError:
        return None
    images = np.asarray(images, dtype=np.float32)
    norms = [keras.ops.convert_to_numpy(encoder_jacobian_norms(encoder, images[start : start + batch_size])[1])
             for start in range(0, len(images), batch_size)]
    return float(np.concatenate(norms).mean()) if norms else None


def _contractive_layer():
    """The ContractiveEncoder layer class, defined on first use."""
    if _CONTRACTIVE:
        return _CONTRACTIVE[0]
    import keras

    class ContractiveEncoder(keras.layers.Layer):
        """The encoder's code, adding weight x mean ||J(x)||_F^2 to the loss (Rifai et al. 2011).
        Like the VAE's KL term it is divided by the 784 pixels our BCE is averaged over, so the
        weight means what it does in the paper: summed BCE + weight x ||J||^2. It owns no
        weights: the encoder's are the ones trained and saved."""

        def __init__(self, encoder, weight: float, **kwargs):
            super().__init__(**kwargs)
            self.encoder, self.penalty_weight = encoder, float(weight)
            _dense_stack(encoder)  # refuse a non-dense encoder at build time, in words

        def call(self, images):
            code, norms = encoder_jacobian_norms(self.encoder, images)
            self.add_loss(self.penalty_weight * keras.ops.mean(norms) / PIXELS)
            return code

        def compute_output_shape(self, input_shape):
            return self.encoder.compute_output_shape(input_shape)

    _CONTRACTIVE.append(ContractiveEncoder)
    return ContractiveEncoder


def kl_divergence(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, 1)) per image, summed over the code's units (numpy or
    Keras tensors)."""
    import keras

    ops = keras.ops
    return -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def _sampling_layer():
    """The Sampling layer class (the reparameterisation trick), defined on first use."""
    if _SAMPLING:
        return _SAMPLING[0]
    import keras

    class Sampling(keras.layers.Layer):
        """z = mean + exp(log_var / 2) * eps while training, the mean itself at inference; adds
        beta x KL to the loss. Our reconstruction loss is BCE averaged over the 784 pixels, so
        the KL term is divided by 784 too: the balance is the usual summed BCE + beta x KL."""

        def __init__(self, beta: float, seed: int = 0, **kwargs):
            super().__init__(**kwargs)
            self.beta = float(beta)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, inputs, training=None):
            z_mean, z_log_var = inputs
            self.add_loss(self.beta * keras.ops.mean(kl_divergence(z_mean, z_log_var)) / PIXELS)
            if not training:
                return z_mean
            noise = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed_generator)
            return z_mean + keras.ops.exp(0.5 * z_log_var) * noise

        def compute_output_shape(self, input_shapes):
            return input_shapes[0]

    _SAMPLING.append(Sampling)
    return Sampling


def _pixel_noise_layer():
    """The PixelNoise layer class, defined on first use so the registry never loads Keras."""
    if _PIXEL_NOISE:
        return _PIXEL_NOISE[0]
    import keras

    class PixelNoise(keras.layers.Layer):
        """Corrupts images while training only (fresh noise each batch, seeded); the same
        kinds as ae.model.noise.add_noise. At inference the input passes through untouched."""

        def __init__(self, kind: str, level: float, seed: int = 0, **kwargs):
            super().__init__(**kwargs)
            self.kind, self.level = kind, float(level)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, images, training=None):
            if not training:
                return images
            ops, random = keras.ops, keras.random
            if self.kind == "gaussian":
                noisy = images + random.normal(ops.shape(images), stddev=self.level, seed=self.seed_generator)
            elif self.kind == "masking":
                noisy = ops.where(random.uniform(ops.shape(images), seed=self.seed_generator) < self.level, 0.0, images)
            else:  # salt and pepper
                draw = random.uniform(ops.shape(images), seed=self.seed_generator)
                noisy = ops.where(draw < self.level / 2, 0.0, ops.where(draw > 1 - self.level / 2, 1.0, images))
            return ops.clip(noisy, 0.0, 1.0)

        def compute_output_shape(self, input_shape):
            return input_shape

    _PIXEL_NOISE.append(PixelNoise)
    return PixelNoise


def build_dense(code_size: int) -> tuple["keras.Model", "keras.Model"]:
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
    return encoder, decoder


def build_deep_dense(code_size: int) -> tuple["keras.Model", "keras.Model"]:
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
    return encoder, decoder


def build_conv(code_size: int) -> tuple["keras.Model", "keras.Model"]:
    """Two stride-2 convolutions (32 and 64 filters, 28 -> 14 -> 7) into a dense, linear code,
    mirrored by transposed convolutions: the stacked encoder for images the article points to."""
    import keras

    image = keras.Input(shape=INPUT_SHAPE, name="image")
    hidden = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv_32")(image)
    hidden = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu", name="conv_64")(hidden)
    hidden = keras.layers.Flatten(name="flatten")(hidden)
    code = keras.layers.Dense(code_size, name="code")(hidden)
    encoder = keras.Model(image, code, name="encoder")

    code_input = keras.Input(shape=(code_size,), name="code_input")
    hidden = keras.layers.Dense(7 * 7 * 64, activation="relu", name="decoder_dense")(code_input)
    hidden = keras.layers.Reshape((7, 7, 64), name="decoder_reshape")(hidden)
    # The mirror image, channel for channel: 64 -> 32 (7 -> 14) -> 1 (14 -> 28). A deeper
    # decoder (64 -> 64 -> 32 -> 1) cost 5x the time per epoch on a CPU for little gain.
    hidden = keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu", name="deconv_32")(hidden)
    reconstruction = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid",
                                                  name="deconv_1")(hidden)
    decoder = keras.Model(code_input, reconstruction, name="decoder")
    return encoder, decoder


def build_vae(code_size: int) -> tuple["keras.Model", "keras.Model"]:
    """A variational autoencoder as in the Keras VAE example, dense: 784 -> 256 -> a mean and a
    log-variance per code unit; the decoder mirrors it. The code is sampled while training."""
    import keras

    image = keras.Input(shape=INPUT_SHAPE, name="image")
    hidden = keras.layers.Flatten(name="flatten")(image)
    hidden = keras.layers.Dense(256, activation="relu", name="encoder_256")(hidden)
    z_mean = keras.layers.Dense(code_size, name="z_mean")(hidden)
    z_log_var = keras.layers.Dense(code_size, name="z_log_var")(hidden)
    moments = keras.Model(image, [z_mean, z_log_var], name="encoder_moments")

    code_input = keras.Input(shape=(code_size,), name="code_input")
    hidden = keras.layers.Dense(256, activation="relu", name="decoder_256")(code_input)
    pixels = keras.layers.Dense(PIXELS, activation="sigmoid", name="pixels")(hidden)
    reconstruction = keras.layers.Reshape(INPUT_SHAPE, name="reconstruction")(pixels)
    decoder = keras.Model(code_input, reconstruction, name="decoder")
    return moments, decoder


ARCHITECTURES: dict[str, Architecture] = {
    architecture.name: architecture
    for architecture in (
        Architecture(
            name="dense",
            label="Dense (article)",
            description="784 -> code (relu) -> 784 (sigmoid): the reference article's model.",
            build=build_dense,
            contractive=True,
        ),
        Architecture(
            name="deep_dense",
            label="Deep dense",
            description="784 -> 256 -> 128 -> code -> 128 -> 256 -> 784: a stacked encoder.",
            build=build_deep_dense,
            contractive=True,
        ),
        Architecture(
            name="conv",
            label="Convolutional",
            description="28x28 -> conv 32 -> conv 64 (stride 2) -> code -> transposed convolutions 32 -> 1.",
            build=build_conv,
            xla=False,  # 2.6x faster per epoch without XLA on a CPU (TensorFlow's own conv kernels)
        ),
        Architecture(
            name="vae",
            label="Variational (VAE)",
            description="784 -> 256 -> mean and log-variance; the code is sampled while training, and "
                        "the loss adds beta x KL to a standard normal prior.",
            build=build_vae,
            variational=True,
        ),
    )
}


def build_models(architecture: str, code_size: int, options: TrainingOptions = TrainingOptions()) -> AutoencoderModels:
    """Build fresh, untrained models; raises ValueError for an unknown architecture or size."""
    if architecture not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise ValueError(f"Unknown architecture '{architecture}'; choose one of: {known}.")
    if isinstance(code_size, bool) or not isinstance(code_size, int) or not 1 <= code_size <= MAX_CODE_SIZE:
        raise ValueError(f"Code size must be a whole number from 1 to {MAX_CODE_SIZE}; got {code_size!r}.")
    with BUILD_LOCK:
        spec = ARCHITECTURES[architecture]
        return _assemble(*spec.build(code_size), options, spec.variational)


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
