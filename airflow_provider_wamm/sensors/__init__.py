"""Airflow sensors of the WhatsApp Marketing Messages provider."""
