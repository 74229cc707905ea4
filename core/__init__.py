"""Tuneboard's engine: fine-tuning from one RunConfig, headless, offline. Never imports streamlit."""
