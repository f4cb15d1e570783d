"""Autoencoder Explorer: entry point. Pages come with the app issue."""
import streamlit as st

st.set_page_config(page_title="Autoencoder Explorer", layout="wide")
st.title("Autoencoder Explorer")
st.write("Train an autoencoder on MNIST and see what it learns.")
