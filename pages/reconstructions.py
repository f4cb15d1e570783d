"""Reconstructions: test digits beside the autoencoder's and PCA's versions, with errors."""
import numpy as np
import streamlit as st

from ae.figures import error_histogram
from ae.images import image_grid
from ae.results import pca_test_set_results, select_digits
from pages.shared import chosen_model_or_stop, manager_or_stop

COLUMNS = 10
METRICS = {"bce": "binary cross-entropy", "mse": "mean squared error"}

manager = manager_or_stop()
dataset = manager.dataset
st.title("Reconstructions")

job, snapshot, models, results = chosen_model_or_stop(manager, "reconstructions_model")
code_size = snapshot.config.code_size

controls = st.columns([1.2, 1, 1.3, 1.3])
count = controls[0].slider("Digits shown", 10, 100, 20, step=10, key="count")
digit_choice = controls[1].selectbox("Digit class", ["all", *range(10)], key="digit_class")
order = controls[2].radio(
    "Which digits", ["first", "worst", "best"], horizontal=True, key="order",
    format_func={"first": "First in test set", "worst": "Worst", "best": "Best"}.get,
)
metric = controls[3].radio("Error", list(METRICS), horizontal=True, format_func=lambda m: m.upper(), key="metric")

digit = None if digit_choice == "all" else int(digit_choice)
indices = select_digits(results.errors(metric), dataset.y_test, count, digit, order)
with st.spinner(f"Fitting PCA with {code_size} components on the training digits..."):
    pca = pca_test_set_results(dataset, code_size)
pca_errors_all = pca.errors(metric)
pca_images, pca_errors = pca.reconstructions[indices], pca_errors_all[indices]
ae_errors = results.errors(metric)[indices]

summary = st.columns(3)
summary[0].metric(f"Autoencoder, test {metric.upper()}", f"{results.errors(metric).mean():.4f}")
summary[1].metric(f"PCA ({code_size} components), test {metric.upper()}", f"{pca_errors_all.mean():.4f}")
wins = float((results.errors(metric) < pca_errors_all).mean())
summary[2].metric("Digits where the autoencoder beats PCA", f"{wins:.0%}")

class_text = "all classes" if digit is None else f"digit {digit}"
st.markdown(
    f"**{len(indices)} test digits ({order}, {class_text}).** Each column: the original (top), the "
    f"**autoencoder**'s reconstruction (middle) and **PCA**'s with {code_size} components (bottom); "
    f"under it the {METRICS[metric]} of each (lower is better; the better one in bold)."
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

st.plotly_chart(
    error_histogram({"autoencoder": results.errors(metric), f"PCA ({code_size} components)": pca_errors_all}, metric.upper()),
    theme=None, key="error_histogram",
)
