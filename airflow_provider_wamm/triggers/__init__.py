"""Airflow triggers of the WhatsApp Marketing Messages provider."""
