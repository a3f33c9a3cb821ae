"""Airflow glue: plain functions the DAGs call (no Airflow imports needed to test them)."""
