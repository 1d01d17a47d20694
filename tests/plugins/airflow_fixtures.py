"""Airflow fixtures (metadata DB, connections)."""
