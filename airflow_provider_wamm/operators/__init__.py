"""Airflow operators of the WhatsApp Marketing Messages provider."""
