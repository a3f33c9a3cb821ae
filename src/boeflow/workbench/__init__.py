"""The reviewer's workbench inside Airflow: the draft digest of the run that awaits approval,
reviewed item by item, and the published digests.

``boeflow.workbench.review`` holds the plain logic (loading a day's draft from the raw store,
the source spans of each automatic-review flag, the HITL answer built from the page and its
validation); ``boeflow.workbench.pages`` renders the pages (Jinja2, autoescaped);
``boeflow.workbench.app`` is the FastAPI app the Airflow plugin (``plugins/boeflow_workbench``)
mounts in the api-server.
"""
