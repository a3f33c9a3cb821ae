"""Kibana saved objects (docker/kibana/boeflow.ndjson): field checks and import.

Kibana cannot run on the build machines, so tests check what can be checked: every field
the saved objects use exists in the real mapping of the real Elasticsearch, and
``boeflow kibana import`` sends the file to the saved-objects import API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from boeflow.core.paths import shipped

DEFAULT_FILE = shipped("kibana", "boeflow.ndjson")
_KQL_FIELD = re.compile(r"([A-Za-z_][\w.]*)\s*:")


class KibanaError(RuntimeError):
    pass


def load_objects(path: Path = DEFAULT_FILE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _search_source(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["attributes"].get("kibanaSavedObjectMeta", {})
    raw = meta.get("searchSourceJSON") or "{}"
    source: dict[str, Any] = json.loads(raw)
    return source


def _fields_of(obj: dict[str, Any]) -> Iterator[str]:
    attributes = obj["attributes"]
    if obj["type"] == "index-pattern" and attributes.get("timeFieldName"):
        yield attributes["timeFieldName"]
    if obj["type"] == "search":
        yield from attributes.get("columns", [])
        yield from (pair[0] for pair in attributes.get("sort", []))
    if obj["type"] == "visualization":
        state = json.loads(attributes["visState"])
        for agg in state.get("aggs", []):
            if "field" in agg.get("params", {}):
                yield agg["params"]["field"]
    query = _search_source(obj).get("query", {}).get("query", "")
    if isinstance(query, str):
        yield from _KQL_FIELD.findall(query)


def referenced_fields(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Index pattern title → fields used by the saved objects on that pattern."""
    titles = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    used: dict[str, set[str]] = {title: set() for title in titles.values()}
    for obj in objects:
        if obj["type"] == "index-pattern":
            used[obj["attributes"]["title"]].update(_fields_of(obj))
            continue
        patterns = [r["id"] for r in obj.get("references", []) if r["type"] == "index-pattern"]
        for pattern in patterns:
            used[titles[pattern]].update(_fields_of(obj))
    return used


def import_objects(kibana_url: str, path: Path = DEFAULT_FILE, overwrite: bool = True,
                   timeout: float = 30.0) -> dict[str, Any]:
    """POST the NDJSON to ``/api/saved_objects/_import``; returns Kibana's answer."""
    url = f"{kibana_url.rstrip('/')}/api/saved_objects/_import"
    try:
        response = httpx.post(url, params={"overwrite": str(overwrite).lower()},
                              headers={"kbn-xsrf": "boeflow"}, timeout=timeout,
                              files={"file": (path.name, path.read_bytes(),
                                              "application/ndjson")})
    except httpx.HTTPError as exc:
        raise KibanaError(f"Kibana is not reachable at {kibana_url}: {exc}") from None
    if response.status_code >= 400:
        raise KibanaError(f"Kibana refused the import ({response.status_code}): "
                          f"{response.text[:300]}")
    answer: dict[str, Any] = response.json()
    if not answer.get("success", False):
        errors = [f"{e.get('type')}/{e.get('id')}: {e.get('error', {}).get('type')}"
                  for e in answer.get("errors", [])]
        raise KibanaError("Kibana imported with errors: " + "; ".join(errors))
    return answer
