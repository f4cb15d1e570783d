"""The app's pages: thin Streamlit views over the engine in `ae/`."""
