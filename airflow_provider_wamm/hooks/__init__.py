"""Airflow hooks of the WhatsApp Marketing Messages provider."""
