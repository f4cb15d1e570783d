"""Home: what an autoencoder is, the current model, and one click to a first model.

Reads saved records only (no TensorFlow), so it paints at once after `streamlit run`.
"""
import sys

import streamlit as st

from ae.data import DataError, load_dataset
from ae.models import ARCHITECTURES
from ae.store import ModelStore
from pages.shared import credit, format_epochs, quick_train_button

st.title("Autoencoder Explorer")
st.markdown(
    "An **autoencoder** is two networks trained together: an encoder *g* squeezes each image *x* into a short "
    "**code** *h = g(x)*, and a decoder *f* rebuilds the image from that code alone, so that *f(g(x))* is as close "
    "to *x* as backpropagation can make it.  \n"
    "Because the code is much smaller than the 784 pixels of a digit, the network has to learn what matters.  \n"
    "Here you choose the code size, train on MNIST live, compare digits with their reconstructions "
    "(and with PCA), and see the codes as a map coloured by digit."
)

try:
    records = ModelStore.for_dataset(load_dataset()).records()
except DataError as error:
    st.error(f"The digits could not be loaded. {error}")
    st.stop()

st.subheader("Current model")
running = None
if "ae.training" in sys.modules:  # loaded by the background warm-up or another page
    from ae.training import get_manager

    running = get_manager().running()
if running is not None:
    snapshot = running.snapshot()
    st.info(
        f"Training now: {snapshot.config.describe()} — {snapshot.progress:.0%} done.",
        icon=":material/model_training:",
    )
    st.page_link("pages/train.py", label="Watch it train", icon=":material/monitoring:")
if records:
    latest = records[-1]
    config = latest["config"]
    metrics = latest.get("test_metrics") or {}
    left, middle, right = st.columns(3)
    left.metric("Architecture", ARCHITECTURES[config.architecture].label)
    middle.metric("Code size", f"{config.code_size} of 784")
    right.metric("Test loss (BCE per pixel)", f"{metrics['bce']:.4f}" if "bce" in metrics else "–")
    st.caption(f"{config.describe()}; trained {format_epochs(float(latest.get('epochs_done', 0)))} epoch(s).")
    cols = st.columns(3)
    cols[0].page_link("pages/reconstructions.py", label="See its reconstructions", icon=":material/compare:")
    cols[1].page_link("pages/latent.py", label="Explore its latent space", icon=":material/scatter_plot:")
    cols[2].page_link("pages/train.py", label="Train another", icon=":material/model_training:")
elif running is None:
    st.write("No model is trained yet. One click trains the article's model (code size 49) for one epoch, about ten seconds:")
quick_train_button("home_quick_train")

st.divider()
credit()
