"""Tests of the Graph API layer (no Airflow)."""
