"""Reconstructions: test digits beside the autoencoder's and PCA's versions, with errors."""
import numpy as np
import streamlit as st

from ae.display.figures import error_histogram, noise_curve_figure
from ae.display.images import image_grid
from ae.model.architectures import ARCHITECTURES, mean_jacobian_norm, predict
from ae.model.noise import LEVEL_MEANING, NOISE_KINDS, add_noise
from ae.analysis.results import NOISE_CURVE_DIGITS, NOISE_LEVELS, error_against_noise, pca_test_set_results, select_digits
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.model_picker import chosen_model_or_stop, load_models_or_warn, manager_or_stop
from pages.presentation import chart

COLUMNS = 10
METRICS = {"bce": "binary cross-entropy", "mse": "mean squared error"}
NOISES = [kind for kind in NOISE_KINDS if kind != "none"]
CONTRACTIVE_ARCHITECTURES = {name for name, spec in ARCHITECTURES.items() if spec.contractive}


def digit_controls(dataset, results):
    """Which test digits to show and by which error; returns (indices, metric, description of the choice)."""
    controls = st.columns([1, 0.7, 1.9, 1])  # the radio's three choices on one line: the digits start higher
    count = controls[0].slider("Digits shown", 10, 100, 20, step=10, key="count")
    digit_choice = controls[1].selectbox("Digit class", ["all", *range(10)], key="digit_class")
    order = controls[2].radio(
        "Which digits", ["first", "worst", "best"], horizontal=True, key="order",
        format_func={"first": "First in test set", "worst": "Worst", "best": "Best"}.get,
    )
    metric = controls[3].radio("Error", list(METRICS), horizontal=True, format_func=lambda m: m.upper(), key="metric")
    digit = None if digit_choice == "all" else int(digit_choice)
    indices = select_digits(results.errors(metric), dataset.y_test, count, digit, order)
    class_text = "all classes" if digit is None else f"digit {digit}"
    return indices, metric, f"{order}, {class_text}"


def summary(results, pca_errors_all, metric: str, code_size: int) -> None:
    summary_cols = st.columns(3)
    summary_cols[0].metric(f"Autoencoder, test {metric.upper()}", f"{results.errors(metric).mean():.4f}")
    summary_cols[1].metric(f"PCA ({code_size} components), test {metric.upper()}", f"{pca_errors_all.mean():.4f}")
    wins = float((results.errors(metric) < pca_errors_all).mean())
    summary_cols[2].metric("Digits where the autoencoder beats PCA", f"{wins:.0%}")


def digit_columns(dataset, results, pca, pca_errors_all, indices, metric: str, choice: str, code_size: int) -> None:
    """Each chosen digit over the autoencoder's and PCA's reconstructions, with both errors."""
    pca_images, pca_errors = pca.reconstructions[indices], pca_errors_all[indices]
    ae_errors = results.errors(metric)[indices]
    st.markdown(  # one line on a projector, so the digits start on its first screen
        f"**{len(indices)} test digits ({choice}):** the original, the **autoencoder**'s reconstruction, "
        f"**PCA**'s with {code_size} components; under them the {metric.upper()} of each (the lower in bold)."
    )
    if len(indices) == 0:
        st.info("No test digits match this filter.")
    for start in range(0, len(indices), COLUMNS):
        columns = st.columns(COLUMNS)
        for offset, index in enumerate(indices[start : start + COLUMNS]):
            position = start + offset
            strip = np.stack([dataset.test_images[index, ..., 0], results.reconstructions[index], pca_images[position]])
            columns[offset].image(image_grid(strip, columns=1, scale=3), width="stretch")
            ae_better = ae_errors[position] < pca_errors[position]
            columns[offset].markdown(
                f"{'**' if ae_better else ''}AE {ae_errors[position]:.3f}{'**' if ae_better else ''}  \n"
                f"{'' if ae_better else '**'}PCA {pca_errors[position]:.3f}{'' if ae_better else '**'}"
            )


def noisy_digits(dataset, models, config, indices) -> str:
    """The first shown digits with noise added, and the model's reconstruction of them; returns the noise kind."""
    noise_controls = st.columns([1.4, 1.2, 3])
    # A denoising model starts with the noise it was trained on; a contractive one with small
    # changes of every pixel (Gaussian), what its penalty is about.
    noise_kind = noise_controls[0].selectbox(
        "Noise", NOISES, format_func=NOISE_KINDS.get, key="recon_noise",
        index=NOISES.index(config.noise_kind if config.denoising else "gaussian" if config.contractive else "masking"),
    )
    noise_level = noise_controls[1].slider("Level", 0.0, 0.5, 0.3, step=0.05, key="recon_noise_level")
    noise_controls[2].caption(f"Level: {LEVEL_MEANING[noise_kind]}. A denoising model was trained on such inputs; "
                              "a plain one never saw noise, nor did a contractive one, which was trained so that small "
                              "changes of its input barely move its code.")
    shown = indices[:COLUMNS]
    if len(shown):
        noisy = add_noise(dataset.test_images[shown], noise_kind, noise_level, seed=0)
        strip = np.concatenate([noisy, predict(models.autoencoder, noisy), dataset.test_images[shown]])[..., 0]
        st.image(image_grid(strip, columns=len(shown), scale=3),
                 caption="Noisy input (top), the model's reconstruction of it (middle), the clean digit (bottom).")
    return noise_kind


@st.cache_resource(max_entries=32, show_spinner=False)
def noise_curve(key: str, saved_at: float, kind: str, _models, _dataset):
    """Shared by every session: computed once per model and noise kind."""
    return error_against_noise(_models, _dataset, kind)


ROBUSTNESS_KINDS = ("plain", "denoising", "contractive")


def robustness_kind(config) -> str | None:
    """Which curve of the comparison a model draws: plain, denoising or contractive (None for a
    model that is several at once, or sparse)."""
    if config.denoising and not config.contractive and not config.sparsity:
        return "denoising"
    if config.contractive and not config.denoising and not config.sparsity:
        return "contractive"
    return "plain" if not config.variants else None


def counterparts(manager, config) -> list:
    """Trained models like this one (architecture, code size), the newest of each other kind of
    plain, denoising and contractive: the comparison the curves are for."""
    mine, found = robustness_kind(config), {}
    for other in manager.trained_jobs():
        theirs = other.snapshot().config
        kind = robustness_kind(theirs)
        if (theirs.architecture, theirs.code_size) == (config.architecture, config.code_size) \
                and kind not in (None, mine) and kind not in found:
            found[kind] = other
    return [found[kind] for kind in ROBUSTNESS_KINDS if kind in found]


def curve_name(config) -> str:
    if config.denoising:
        return f"denoising ({config.noise_kind.replace('_', ' and ')} {config.noise_level:g})"
    if config.contractive:
        return f"contractive (λ {config.contractive:g})"
    return f"sparse (L1 {config.sparsity:g})" if config.sparsity else "plain"


@st.cache_resource(max_entries=32, show_spinner=False)
def jacobian_norm(key: str, saved_at: float, _models, _dataset) -> float | None:
    """Shared by every session: a dense encoder's mean squared Jacobian norm on the curve's digits."""
    return mean_jacobian_norm(_models.encoder, _dataset.test_images[:NOISE_CURVE_DIGITS])


def noise_curves(manager, job, snapshot, models, noise_kind: str) -> None:
    """The error at each noise level, for this model and its plain, denoising and contractive
    counterparts; for dense encoders, how much each one's code moves with its input."""
    dataset = manager.dataset
    with st.spinner(f"Measuring the error at each noise level on {NOISE_CURVE_DIGITS:,} test digits..."):
        curves = {f"this model: {curve_name(snapshot.config)}": noise_curve(job.key, snapshot.saved_at, noise_kind, models,
                                                                             dataset)}
        norms = {curve_name(snapshot.config): jacobian_norm(job.key, snapshot.saved_at, models, dataset)}
        others = counterparts(manager, snapshot.config)
        for other in others:
            theirs = other.snapshot()
            other_models = load_models_or_warn(other, f"The {curve_name(theirs.config)} model")
            if other_models is None:
                continue
            curves[f"{curve_name(theirs.config)}, same size"] = noise_curve(
                other.key, theirs.saved_at, noise_kind, other_models, dataset)
            norms[curve_name(theirs.config)] = jacobian_norm(other.key, theirs.saved_at, other_models, dataset)
    chart(noise_curve_figure(NOISE_LEVELS, curves, NOISE_KINDS[noise_kind].split(" (")[0]),
          key="noise_curve")
    measured = [f"{name} {norm:,.1f}" for name, norm in norms.items() if norm is not None]
    if measured:
        st.caption("How far the code moves with the input, the mean squared Frobenius norm of the encoder's Jacobian "
                   f"on these digits (a contractive model keeps it small): {'; '.join(measured)}.")
    missing = [kind for kind in ROBUSTNESS_KINDS if kind != robustness_kind(snapshot.config)
               and kind not in {robustness_kind(other.snapshot().config) for other in others}
               and (kind != "contractive" or snapshot.config.architecture in CONTRACTIVE_ARCHITECTURES)]
    if missing:
        st.caption(f"Train {' or '.join(f'a {kind}' for kind in missing)} model with the same architecture and code size "
                   "(Train, More settings) to see the curves side by side.")


def reconstructions_page() -> None:
    leave_legacy_pages_mode()
    manager = manager_or_stop()
    dataset = manager.dataset
    title_column, picker_column = st.columns([1, 2.2])  # the title's row holds the picker
    title_column.title("Reconstructions")
    with picker_column:
        job, snapshot, models, results = chosen_model_or_stop(manager, "reconstructions_model")
    code_size = snapshot.config.code_size
    indices, metric, choice = digit_controls(dataset, results)
    with st.spinner(f"Fitting PCA with {code_size} components on the training digits..."):
        pca = pca_test_set_results(dataset, code_size)
    pca_errors_all = pca.errors(metric)
    digit_columns(dataset, results, pca, pca_errors_all, indices, metric, choice, code_size)
    summary(results, pca_errors_all, metric, code_size)  # under the digits, which come first on a projector
    chart(
        error_histogram({"autoencoder": results.errors(metric), f"PCA ({code_size} components)": pca_errors_all},
                        metric.upper()),
        key="error_histogram",
    )
    st.subheader("When the input is noisy")
    noise_kind = noisy_digits(dataset, models, snapshot.config, indices)
    noise_curves(manager, job, snapshot, models, noise_kind)


reconstructions_page()
