"""boeflow's local operations toolkit, apart from the application: supervision of the local
services (Elasticsearch, PostgreSQL, Redis, the Airflow processes), the local Airflow
launcher and its REST client, and the demo. It imports the application; nothing under
``boeflow`` imports it (``boeflow services`` and ``boeflow airflow`` are registered through
the ``boeflow.commands`` entry point)."""
