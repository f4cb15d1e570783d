"""Autoencoder Explorer's engine: data, models, training jobs, metrics, projections, figures.

Never imports streamlit. Importing the package sets TensorFlow's and numba's thread
settings before either library loads (see `ae.runtime`).
"""
from ae.runtime import configure_environment

configure_environment()
