"""The teaching defaults' measurements: `python -m ae.bench --defaults`.

Two of the article's claims are only visible under the right settings, so the Code size and
Few labels pages' defaults come from these figures (README, "Teaching defaults"):
- an autoencoder reconstructs better than PCA: the dense and convolutional models at code sizes
  8 and 32, trained as the training job trains (same compile, same `fast_fit` loop), their test
  BCE after every epoch next to PCA's with as many components, and the first epoch that wins;
- codes help a classifier when labels are scarce: the few-labels probe (`run_probe`) on the codes
  of every architecture after a few epoch counts, next to raw pixels and PCA in the same run, and
  the label counts at which the codes beat the pixels.
"""
from __future__ import annotations

import time


# architecture -> (code sizes, epochs): the dense model at every size the sweep starts with
# (cheap), the convolutional one at 8 and 32 (about 10 s an epoch on 2 cores).
CURVES = {"dense": ((2, 4, 8, 16, 32, 49, 64, 128), 20), "conv": ((8, 32), 10)}
PROBE_SIZES = (8, 32)  # the curves' models probed, after PROBE_EPOCHS
PROBE_EPOCHS = (3, 10, 20)
METRICS = ("bce", "mse")
PROBE_LABEL_COUNTS = (10, 30, 100, 300, 1000, 3000, 10000, None)
PROBE_DRAWS = 3
EXTRA_EPOCHS = 10
# Every other architecture and option, probed after 3 and EXTRA_EPOCHS epochs.
EXTRA_MODELS = {
    "dense c49 (the article's)": dict(code_size=49),
    "dense c2 (the map preset)": dict(code_size=2),
    "deep dense c32": dict(architecture="deep_dense", code_size=32),
    "VAE c32": dict(architecture="vae", code_size=32),
    "VAE c2 (the preset)": dict(architecture="vae", code_size=2),
    "sparse dense c32 (L1 1e-4)": dict(code_size=32, sparsity=1e-4),
    "denoising dense c32 (masking 0.3)": dict(code_size=32, noise_kind="masking", noise_level=0.3),
}


def train_evaluating(config, dataset, on_epoch):
    """`config`'s model trained as the training job trains it, calling `on_epoch(epoch, models)`
    after each epoch (1-based); returns the models."""
    import keras

    from ae.model.architectures import build_models
    from ae.training import fast_fit
    from ae.training.worker import VALIDATION_SIZE, pixel_binary_crossentropy, uses_xla

    keras.utils.set_random_seed(config.seed)
    models = build_models(config.architecture, config.code_size, config.training_options())
    models.autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                               loss=pixel_binary_crossentropy, jit_compile=uses_xla(config))
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, models))
    fast_fit.fit(models.autoencoder, dataset.train_images, config.batch_size, config.epochs, [callback],
                 dataset.test_images[:VALIDATION_SIZE], seed=config.seed, xla=uses_xla(config))
    return models


def first_win(errors: list[float], baseline: float) -> int | None:
    """The first epoch (1-based) whose error is below the baseline's, or None."""
    return next((epoch for epoch, error in enumerate(errors, start=1) if error < baseline), None)


def _codes(models, dataset):
    from ae.model.architectures import predict

    return predict(models.encoder, dataset.train_images), predict(models.encoder, dataset.test_images)


def defaults_table() -> None:
    from ae.analysis.few_labels import counts_where_codes_beat_pixels, run_probe
    from ae.analysis.metrics import evaluate_pca, evaluate_reconstructions
    from ae.model.architectures import predict
    from ae.model.config import TrainingConfig
    from ae.model.data import load_dataset

    dataset = load_dataset()
    started = time.perf_counter()
    codes: dict[str, tuple] = {}  # probe label -> (train codes, test codes)
    curves: dict[tuple[str, int], dict[str, list[float]]] = {}
    print("\ndefaults: test error after each epoch against PCA with as many components (full MNIST, batch 256)", flush=True)
    for architecture, (sizes, epochs) in CURVES.items():
        for size in sizes:
            config = TrainingConfig(architecture=architecture, code_size=size, epochs=epochs)
            errors = curves[(architecture, size)] = {metric: [] for metric in METRICS}
            pca = evaluate_pca(dataset, size)

            def after(epoch, models, errors=errors, architecture=architecture, size=size, pca=pca):
                summary = evaluate_reconstructions(dataset, predict(models.autoencoder, dataset.test_images))
                for metric in METRICS:
                    errors[metric].append(getattr(summary, metric))
                print(f"  {architecture} c{size} epoch {epoch:>2}: BCE {summary.bce:.4f} (PCA {pca.bce:.4f}), "
                      f"MSE {summary.mse:.4f} (PCA {pca.mse:.4f})  [{time.perf_counter() - started:.0f} s]", flush=True)
                if epoch in PROBE_EPOCHS and size in PROBE_SIZES:
                    codes[f"{architecture} c{size} e{epoch}"] = _codes(models, dataset)

            train_evaluating(config, dataset, after)
    longest = max(epochs for _, epochs in CURVES.values())
    for metric in METRICS:
        print(f"\ntest {metric.upper()} after each epoch")
        print(f"{'model':<14}{'PCA':>9}" + "".join(f"{'e' + str(e):>8}" for e in range(1, longest + 1))
              + "  first epoch that beats PCA")
        for (architecture, size), errors in curves.items():
            pca = getattr(evaluate_pca(dataset, size), metric)
            series = errors[metric]
            win = first_win(series, pca)
            print(f"{architecture + ' c' + str(size):<14}{pca:>9.4f}" + "".join(f"{e:>8.4f}" for e in series)
                  + " " * 8 * (longest - len(series)) + f"  {win if win else 'not within ' + str(len(series))}",
                  flush=True)

    for label, settings in EXTRA_MODELS.items():
        config = TrainingConfig(epochs=EXTRA_EPOCHS, **settings)

        def keep(epoch, models, label=label):
            if epoch in (3, EXTRA_EPOCHS):
                codes[f"{label} e{epoch}"] = _codes(models, dataset)

        train_evaluating(config, dataset, keep)
        print(f"  trained {label} [{time.perf_counter() - started:.0f} s]", flush=True)

    if not codes:
        return
    print(f"\nfew-labels probe: logistic regression test accuracy, mean of {PROBE_DRAWS} draws (one at 60,000)", flush=True)
    counts = None
    rows = []
    for label, (train, test) in codes.items():
        results = run_probe(dataset, train, test, PROBE_LABEL_COUNTS, PROBE_DRAWS, seed=0)
        counts = results["pixels"].label_counts
        if not rows:
            rows.append(("raw pixels (784-D)", results["pixels"].mean(), None))
        rows.append((f"PCA {results['pca'].dimensions}-D", results["pca"].mean(), None))
        rows.append((label, results["autoencoder"].mean(),
                     counts_where_codes_beat_pixels(results["autoencoder"], results["pixels"])))
        print(f"  probed {label} [{time.perf_counter() - started:.0f} s]", flush=True)
    print(f"\n{'features':<42}" + "".join(f"{c:>8,}" for c in counts) + "  codes beat pixels at")
    seen = set()
    for label, means, wins in rows:
        if label in seen:
            continue
        seen.add(label)
        tail = "" if wins is None else ("  " + (", ".join(f"{c:,}" for c in wins) if wins else "none"))
        print(f"{label:<42}" + "".join(f"{m:>8.1%}" for m in means) + tail, flush=True)
    print(f"\ndefaults measured in {time.perf_counter() - started:.0f} s")
