"""PostgreSQL state of the daily pipeline (issue 10)."""
