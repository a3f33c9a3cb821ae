"""The workbench's FastAPI app, mounted by Airflow's api-server (plugin
``plugins/boeflow_workbench.py``) under ``/boeflow``:

``GET  /boeflow/borrador?dag_id=…&run_id=…&lang=es|va|bi``  the run's draft, item by item
``POST /boeflow/respuesta?dag_id=…&run_id=…``               the reviewer's answer (JSON)
``GET  /boeflow/publicados``                                 the published digests
``GET  /boeflow/publicados/YYYY-MM-DD``                      one published digest (HTML)

Security. Plugin endpoints are not protected by Airflow on their own: every endpoint here
depends on Airflow's auth-manager dependencies (``requires_access_dag``): the draft and the
answer need the permission that answering the approval needs (``PUT`` on the DAG's HITL
details), the published digests need read access to the DAG. The session is Airflow's own
(its ``_token`` cookie or a bearer token); there is no other login. The answer is passed to
Airflow's own HITL API (``PATCH …/hitlDetails``) in-process, with the reviewer's token, so
Airflow checks the user again, writes the audit log and the Required Actions page shows it.
A cookie-authenticated POST needs the page's CSRF token (an HMAC of the session token with
the api-server's ``[api] secret_key``), a JSON body and a same-origin ``Origin``. Pages are
served with a content-security policy (scripts from this app only, no inline script) and
render BOE text and reviewers' text escaped (Jinja2 autoescape; the page script only sets
``textContent``). Only the configured raw store is read, by keys built from a checked day.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.types import Receive, Scope, Send

from boeflow.boe.store import RawStore, store_url
from boeflow.core.settings import Settings, get_settings
from boeflow.digest.model import Digest, Summary
from boeflow.workbench import review

URL_PREFIX = "/boeflow"
APPROVE_TASK = "approve"
DAY_TASK = "which_day"
DAGS = ("boe_daily", "boe_digest")
ROOT_APP = "boeflow.root_app"
CSRF_HEADER = "X-BoeFlow-CSRF"
LANGUAGES = (("es", "Castellano"), ("va", "Valencià"), ("bi", "Bilingüe"))
STATES = {"auto_checked": "revisado automáticamente, sin avisos",
          "needs_attention": "necesita atención", "failed": "resumen fallido",
          "not_enriched": "sin resumen"}
SOURCE_CHARS = 4000

# Scripts and styles from this app only; no inline script, no plugins, no foreign fetches;
# framed by the Airflow UI only (same origin).
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'")
# A published digest is a self-contained page (inline styles): it runs no script at all.
DIGEST_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
              "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; "
              "sandbox allow-popups allow-popups-to-escape-sandbox")
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store"}


class WorkbenchApp(FastAPI):
    """The mounted app; keeps a reference to the api-server's root app (the ASGI scope's
    ``app`` when the mount calls us) to call Airflow's own REST API in-process."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and scope.get("app") is not self:
            scope.setdefault(ROOT_APP, scope.get("app"))
        await super().__call__(scope, receive, send)


# --- Airflow's auth (imported lazily: the package imports without Airflow) ------------------

def _requires(method: str, hitl: bool) -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    entity = DagAccessEntity.HITL_DETAIL if hitl else None
    return Depends(requires_access_dag(method=method, access_entity=entity))


def _requires_read_published() -> Any:
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag(method="GET", param_dag_id=DAGS[0]))


def session_token(request: Request) -> tuple[str, bool]:
    """The caller's Airflow token and whether it came from the session cookie."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    token = request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        raise HTTPException(401, "Not authenticated")
    return token, True


@lru_cache(maxsize=1)
def _secret() -> bytes:
    from airflow.configuration import conf

    return str(conf.get("api", "secret_key")).encode("utf-8")


def csrf_token(token: str, secret: bytes | None = None) -> str:
    return hmac.new(secret or _secret(), b"boeflow-csrf\0" + token.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def check_same_origin(request: Request) -> None:
    """Refuse a cross-site state-changing request (before anything else is read)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site not in (None, "same-origin"):
        raise HTTPException(403, "cross-site request refused")
    origin = request.headers.get("origin")
    if origin is not None:
        allowed = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
        from airflow.configuration import conf

        base = urlsplit(conf.get("api", "base_url", fallback="") or "")
        if base.scheme and base.netloc:
            allowed.add(f"{base.scheme}://{base.netloc}")
        if origin not in allowed:
            raise HTTPException(403, "cross-site request refused")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(415, "a JSON body is required")


def check_csrf(request: Request) -> None:
    check_same_origin(request)
    token, from_cookie = session_token(request)
    if from_cookie:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent, csrf_token(token)):
            raise HTTPException(403, "missing or wrong CSRF token")


# --- Airflow's REST API, in-process, as the caller ----------------------------------------

async def airflow_api(request: Request, method: str, path: str,
                      body: dict[str, Any] | None = None) -> httpx.Response:
    root = request.scope.get(ROOT_APP)
    if root is None:
        raise HTTPException(500, "the workbench is not mounted in Airflow's api-server")
    token, _ = session_token(request)
    transport = httpx.ASGITransport(app=root)
    async with httpx.AsyncClient(transport=transport, base_url="http://airflow-api") as client:
        return await client.request(method, "/api/v2" + path, json=body, timeout=60,
                                    headers={"Authorization": f"Bearer {token}"})


def _run_path(dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    return f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"


async def hitl_detail(request: Request, dag_id: str, run_id: str) -> dict[str, Any] | None:
    response = await airflow_api(
        request, "GET", f"{_run_path(dag_id, run_id)}/taskInstances/{APPROVE_TASK}/-1/"
        "hitlDetails")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise HTTPException(response.status_code, response.json().get("detail", "Airflow"))
    detail: dict[str, Any] = response.json()
    return detail


async def run_day(request: Request, dag_id: str, run_id: str) -> date | None:
    response = await airflow_api(
        request, "GET", f"{_run_path(dag_id, run_id)}/taskInstances/{DAY_TASK}/"
        "xcomEntries/return_value")
    if response.status_code != 200:
        return None
    value = response.json().get("value")
    if isinstance(value, str) and value.startswith('"'):
        value = json.loads(value)
    return review.parse_day(value)


# --- pages -----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(loader=PackageLoader("boeflow.workbench", "templates"),
                       autoescape=select_autoescape(enabled_extensions=("html.jinja",),
                                                    default=True),
                       undefined=StrictUndefined)


def render(template: str, **values: Any) -> str:
    """A workbench page (autoescaped: BOE and reviewers' text is never markup)."""
    return _templates().get_template(template).render(**values)


def _html(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    text = render(template, **values)
    return HTMLResponse(text, status_code=status,
                        headers={**HEADERS, "Content-Security-Policy": PAGE_CSP})


def _store(settings: Settings) -> RawStore:
    return RawStore(store_url(settings))


def item_views(store: RawStore, day: date, digest: Digest) -> dict[str, dict[str, Any]]:
    views: dict[str, dict[str, Any]] = {}
    for item in digest.all_items():
        text = review.source_text(store, day, item.boe_id)
        views[item.boe_id] = {
            "es": review.summary_text(item, "es"), "va": review.summary_text(item, "va"),
            "flags": review.flags(item.review.reasons, text),
            "source": text[:SOURCE_CHARS] + ("…" if len(text) > SOURCE_CHARS else "")}
    return views


def _answer_view(detail: dict[str, Any]) -> dict[str, Any] | None:
    if not detail.get("response_received"):
        return None
    user = detail.get("responded_by_user") or {}
    return {"option": ", ".join(detail.get("chosen_options") or []),
            "user": user.get("name") or user.get("id") or "(plazo vencido)",
            "at": str(detail.get("responded_at") or "")[:19].replace("T", " "),
            "params": detail.get("params_input") or {}}


def create_app(settings: Settings | None = None) -> WorkbenchApp:
    app = WorkbenchApp(title="boeflow workbench", docs_url=None, redoc_url=None,
                       openapi_url=None)

    def get() -> Settings:
        return settings if settings is not None else get_settings()

    @app.exception_handler(review.BadId)
    async def bad_id(request: Request, exc: review.BadId) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400, headers=HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        kinds = {"workbench.js": "text/javascript", "workbench.css": "text/css"}
        if name not in kinds:
            raise HTTPException(404, "Not Found")
        data = resources.files("boeflow.workbench").joinpath("static", name).read_bytes()
        return Response(data, media_type=kinds[name],
                        headers={**HEADERS, "Cache-Control": "max-age=300"})

    @app.get("/borrador", dependencies=[_requires("PUT", hitl=True)])
    async def borrador(request: Request, dag_id: str = Query(...), run_id: str = Query(...),
                       lang: str = Query("es")) -> HTMLResponse:
        if lang not in {code for code, _ in LANGUAGES}:
            lang = "es"
        token, _ = session_token(request)
        values: dict[str, Any] = {
            "base": request.scope.get("root_path", URL_PREFIX), "dag_id": dag_id,
            "run_id": run_id, "lang": lang, "languages": LANGUAGES, "states": STATES,
            "csrf": csrf_token(token), "digest": None, "views": {}, "answer": None,
            "editable": False, "options": [], "message": None, "day": ""}
        if dag_id not in DAGS:
            values["message"] = f"El DAG {dag_id} no tiene borradores de resumen."
            return _html("borrador.html.jinja", **values)
        detail = await hitl_detail(request, dag_id, run_id)
        day = await run_day(request, dag_id, run_id)
        if day is None:
            values["message"] = "Esta ejecución aún no ha decidido qué día procesa."
            return _html("borrador.html.jinja", **values)
        values["day"] = day.isoformat()
        store = _store(get())
        digest = review.load_draft(store, day)
        if digest is None:
            values["message"] = "Esta ejecución aún no tiene borrador."
            return _html("borrador.html.jinja", **values)
        values.update(digest=digest, views=item_views(store, day, digest))
        if detail is None:
            values["message"] = "Esta ejecución no pide revisión (todavía)."
        else:
            values["answer"] = _answer_view(detail)
            values["options"] = list(detail.get("options") or [])
            values["editable"] = values["answer"] is None
        return _html("borrador.html.jinja", **values)

    @app.post("/respuesta", dependencies=[_requires("PUT", hitl=True)])
    async def respuesta(request: Request, dag_id: str = Query(...),
                        run_id: str = Query(...)) -> JSONResponse:
        check_csrf(request)
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "the body must be a JSON object")
        detail = await hitl_detail(request, dag_id, run_id)
        if detail is None:
            raise HTTPException(404, "this run does not ask for a review")
        if detail.get("response_received"):
            return JSONResponse({"detail": "ya respondida", "answer": _answer_view(detail)},
                                status_code=409, headers=HEADERS)
        day = await run_day(request, dag_id, run_id)
        store = _store(get())
        draft = review.load_draft(store, day) if day else None
        if day is None or draft is None:
            raise HTTPException(409, "this run has no draft")
        try:
            sent = review.submission(body, list(detail.get("options") or []))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        found = problems_of(get(), store, day, draft, sent)
        if found:
            return JSONResponse({"problems": [p.as_json() for p in found]}, status_code=422,
                                headers=HEADERS)
        ti = detail["task_instance"]
        response = await airflow_api(
            request, "PATCH", f"{_run_path(dag_id, run_id)}/taskInstances/"
            f"{ti['task_id']}/{ti['map_index']}/hitlDetails",
            {"chosen_options": [sent.option], "params_input": sent.params})
        out = response.json()
        return JSONResponse(out, status_code=response.status_code, headers=HEADERS)

    @app.get("/publicados", dependencies=[_requires_read_published()])
    def publicados(request: Request) -> HTMLResponse:
        from boeflow.digest.publish import read_digest

        store = _store(get())
        rows = []
        for day in review.published(store):
            digest = read_digest(store, day)
            decision = digest.decision if digest else None
            rows.append({"day": day.isoformat(), "version": digest.version if digest else None,
                         "items": digest.header.items if digest else "",
                         "decision": decision.decision if decision else None,
                         "reviewer": decision.reviewer if decision else None})
        return _html("publicados.html.jinja", base=request.scope.get("root_path", URL_PREFIX),
                     days=rows)

    @app.get("/publicados/{day}", dependencies=[_requires_read_published()])
    def publicado(day: str) -> Response:
        data = review.published_html(_store(get()), review.parse_day(day))
        if data is None:
            raise HTTPException(404, f"no published digest for {day}")
        return Response(data, media_type="text/html; charset=utf-8",
                        headers={**HEADERS, "Content-Security-Policy": DIGEST_CSP})

    return app


def problems_of(settings: Settings, store: RawStore, day: date, draft: Digest,
                sent: review.Submission, user: dict[str, Any] | None = None
                ) -> list[review.Problem]:
    """Why the answer cannot be sent: ``boeflow.digest.decision.validate_decision`` on the
    answer as the approval step will read it (``answer_from_hitl``), then the corrections
    re-checked against the raw store's text of the item (a Valencian one against the Spanish
    resumen: corrected, or the draft's)."""
    from boeflow.digest.collect import check_correction
    from boeflow.digest.decision import DecisionError, answer_from_hitl

    items = {i.boe_id: i for i in draft.all_items()}
    edits = sent.params.get("correcciones") or {}
    try:
        answer = answer_from_hitl({"chosen_options": [sent.option], "params_input": sent.params,
                                   "responded_by_user": user or {"id": "?", "name": "?"}},
                                  settings.digest_publish_on_timeout)
    except DecisionError as exc:
        return [review.Problem(str(exc), field="draft")]
    assert answer is not None

    def check(boe_id: str, language: str, summary: Summary) -> tuple[bool, list[str]]:
        spanish = (edits.get(boe_id) or "").strip() or review.summary_text(items[boe_id], "es")
        return check_correction(settings, review.source_text(store, day, boe_id), language,
                                summary, spanish=spanish or None)

    return review.problems(draft, answer, check)
