"""Tests of the Airflow hooks."""
