"""Streamlit-side helpers shared by the pages: strings, state, widgets, figures. Never imports torch."""
