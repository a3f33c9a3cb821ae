"""boeflow's reviewer workbench in the Airflow UI (Airflow 3.1+ plugin interfaces).

* a FastAPI app mounted by the api-server under ``/boeflow`` (``boeflow.workbench.app``);
* a "Borrador" tab on the run and task-instance pages (external views rendered in the UI's
  iframe): the draft digest of the run that awaits approval, reviewed item by item;
* a "Resúmenes publicados" entry in the navigation bar.

Thin on purpose: the logic lives in ``boeflow.workbench``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from boeflow.workbench.app import URL_PREFIX, create_app

BORRADOR = f"{URL_PREFIX}/borrador?dag_id={{DAG_ID}}&run_id={{RUN_ID}}"


class BoeflowWorkbench(AirflowPlugin):  # type: ignore[misc]
    name = "boeflow_workbench"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [{"app": create_app(), "url_prefix": URL_PREFIX,
                     "name": "boeflow: revisión de resúmenes"}]
    external_views: ClassVar[list[dict[str, str]]] = [
        {"name": "Borrador", "href": BORRADOR, "destination": "dag_run",
         "url_route": "borrador"},
        {"name": "Borrador", "href": BORRADOR, "destination": "task_instance",
         "url_route": "borrador-tarea"},
        {"name": "Resúmenes publicados", "href": f"{URL_PREFIX}/publicados",
         "destination": "nav", "url_route": "resumenes-publicados", "category": "browse"},
    ]
