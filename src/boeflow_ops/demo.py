"""The demo (``make demo``): the daily job on the recorded BOE samples, smoke profile.

1. serve the recorded publications on loopback as the BOE would (replay server);
2. fetch two recorded days into the raw store (items that were not recorded answer 404 and
   are reported as such: the samples hold a handful of each day's items);
3. parse → chunk → embed → index the fetched items and every sample document;
4. search, with citations; evaluate retrieval on the shipped known-item set;
5. summarise (smoke model), translate to Valencian (Apertium: real Valencian, of smoke text
   for the summaries; every title of the sumario too) and review the fetched days (stored in
   boe-documents for Kibana) and show one short disposition in detail;
6. run the daily DAG for 2024-11-06 with ``airflow dags test``; its approval step is answered
   by a named demo reviewer through Airflow's REST API (the path a human's click takes), then
   print where the published Markdown/HTML/JSON are, the day's SQL status and a search.

Everything model-made is labelled SMOKE: the models are tiny and random by design.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from rich.console import Console

from boeflow.core.settings import Settings, get_settings

console = Console(stderr=False, highlight=False)
DAYS = (date(2024, 11, 6), date(2024, 11, 13))


def main() -> None:
    from boeflow.boe.replay import BoeServer
    from boeflow.evals.retrieval import evaluate, load_set
    from boeflow.index.client import es_session, names_for
    from boeflow.index.embed import shared_embedder
    from boeflow.index.files import expand_paths, index_files
    from boeflow.index.search import Searcher
    from boeflow.jobs.fetch import fetch_day
    from boeflow.jobs.index import index_day

    settings = get_settings()
    label = "[bold yellow]SMOKE[/] " if settings.is_smoke else ""
    console.rule(f"boeflow demo — profile {settings.profile}")
    with BoeServer(settings.samples_dir) as server:
        replay = settings.model_copy(update={"boe_base_url": server.url, "boe_rate_limit": 0.0,
                                             "boe_max_attempts": 2})
        for day in DAYS:
            summary = fetch_day(day.isoformat(), replay)
            console.print(f"fetch {day}: {summary.items} items in the sumario, "
                          f"{summary.fetched} fetched, {summary.skipped} already stored, "
                          f"{summary.failed} not in the recorded samples (HTTP 404)")

    for day in DAYS:  # the daily job's index step, as the DAG's batches run it
        indexed = index_day(day.isoformat(), settings)
        console.print(f"index {day}: {indexed.documents} documents, {indexed.chunks} "
                      f"chunks, {indexed.embedded} embedded, {len(indexed.failed)} failed")
    # Every other sample document (not part of a recorded day), for the searches below.
    report = index_files(expand_paths([settings.samples_dir / "documents"]), settings)
    console.print(f"index samples: {report.documents} documents, {report.chunks} chunks, "
                  f"{report.embedded} embedded, {report.skipped_unchanged} unchanged, "
                  f"{len(report.failed)} failed")

    with es_session(settings) as client:
        searcher = Searcher(client, names_for(settings), shared_embedder(settings))
        for query, mode in (("artículo 14 igualdad ante la ley", "bm25"),
                            ("plazo de solicitud de las ayudas por la DANA", "hybrid")):
            console.rule(f"search ({mode}): {query}")
            for n, result in enumerate(searcher.search(query, mode, size=3), start=1):  # type: ignore[arg-type]
                console.print(f"{n}. {result.doc_id} — {result.title[:100]}")
                console.print(f"   {result.citation['path'][:120]}  {result.citation['url']}",
                              markup=False)
                for link in result.links[:3]:
                    console.print(f"   ↳ {link['relation']} {link['target_id']}")
        metrics = evaluate(searcher, load_set())
        console.rule("retrieval on the shipped known-item set")
        for mode, values in metrics.items():
            console.print(f"{mode:<7} recall@10={values['recall@10']:.3f} "
                          f"mrr@10={values['mrr@10']:.3f}"
                          + ("  (kNN from a random smoke model)" if settings.is_smoke and
                             mode != "bm25" else ""))

    from boeflow.enrich.service import summarize, translate_fields
    from boeflow.jobs.enrich import enrich_day

    console.rule(f"{label}summary, translation and review")
    for day in DAYS:
        enriched = enrich_day(day.isoformat(), settings)
        console.print(f"{label}enrich {day}: {len(enriched.enriched)} documents summarised, "
                      f"translated and reviewed; {len(enriched.needs_attention)} flagged for "
                      f"a human; {len(enriched.failed)} failed")
        titles = enriched.titles_va
        if titles.get("titles"):
            console.print(f"titles in Valencian (Apertium {settings.translate_apertium_mode}): "
                          f"{titles['titles']} titles, department and section names, "
                          f"{titles['translated']} translated now in {titles['seconds']} s")
    doc, record = summarize(settings, str(settings.samples_dir / "documents" /
                                          "BOE-A-2024-25801.xml"))
    console.print(f"{label}{doc.id}: status {record.status}, mode {record.mode}, "
                  f"{record.generate_calls} generate calls")
    if record.review:
        console.print(f"review: needs_attention={record.review.needs_attention}; "
                      + "; ".join(record.review.reasons[:3]), markup=False)
    translation = translate_fields(settings, doc.id, [("titulo", doc.title)], "va",
                                   source="es")
    if translation.review:
        by = "Apertium" if translation.backend == "apertium" else label + translation.model
        console.print(f"translation es→va by {by}: {translation.text()}", markup=False)
        console.print(f"  reviewed: needs_attention={translation.review.needs_attention}")
    reviewed_day(settings, DAYS[0])
    console.print("Basado en datos de la Agencia Estatal Boletín Oficial del Estado.")


DEMO_REVIEWER = "demo.revisora"


def reviewed_day(settings: Settings, day: date) -> None:
    """The daily DAG for ``day`` under ``airflow dags test`` (metadata in boeflow's
    PostgreSQL), with the approval answered as ``DEMO_REVIEWER`` via the REST API."""
    import secrets
    import subprocess
    import sys

    from boeflow.boe.replay import BoeServer
    from boeflow.state.db import state
    from boeflow.state.records import day_status
    from boeflow_ops.airflow_api import (
        AirflowApiError,
        ApiServer,
        ReviewClient,
        airflow,
        airflow_env,
    )

    console.rule(f"daily DAG for {day}: human approval in Airflow, published digest")
    home = settings.data_dir / "airflow-demo"
    password = secrets.token_urlsafe(16)
    with BoeServer(settings.samples_dir) as boe:
        env = airflow_env(settings, home, {DEMO_REVIEWER: password}, {
            "BOEFLOW_PROFILE": settings.profile, "BOEFLOW_DATA_DIR": str(settings.data_dir),
            "BOEFLOW_SMOKE_MODELS_DIR": str(settings.smoke_models_dir),
            "BOEFLOW_BOE_BASE_URL": boe.url, "BOEFLOW_BOE_RATE_LIMIT": "0",
            "BOEFLOW_BOE_MAX_ATTEMPTS": "2",
            # `airflow dags test` runs the DAG unserialized, where Airflow 3.3 cannot look up
            # a Deadline Alert: the demo's run sets none.
            "BOEFLOW_DIGEST_REVIEW_DEADLINE": "off"})
        migrated = airflow(["db", "migrate"], env)
        if migrated.returncode != 0:
            raise SystemExit(f"airflow db migrate failed: {migrated.stderr.strip()[-300:]}")
        log = home / "dags-test.log"
        with ApiServer(env, home / "api-server.log") as api:
            console.print(f"airflow api-server on {api.url}; `airflow dags test boe_daily {day}` "
                          f"(log: {log})")
            binary = str(Path(sys.executable).with_name("airflow"))
            with log.open("wb") as out:
                proc = subprocess.Popen([binary, "dags", "test", "boe_daily", day.isoformat()],
                                        stdout=out, stderr=subprocess.STDOUT, env=env)
            reviewer = ReviewClient(api.url, DEMO_REVIEWER, password)
            try:
                pending = reviewer.wait_pending("boe_daily", 1800,
                                                alive=lambda: proc.poll() is None)
            except AirflowApiError:
                pending = None
                console.print("no approval asked: this draft is already published")
            if pending is not None:
                console.print(f"Required Action: {pending['subject']}")
                console.print(pending["body"].split("###")[0].strip(), markup=False)
                flagged = [line.split("**")[1] for line in pending["body"].splitlines()
                           if line.startswith("- **")]
                params = {"excluir": [], "correcciones": {},
                          "notas": {b: "Resumen de modelo smoke: revisar" for b in flagged[:1]},
                          "nota": "Aprobado por la revisora de la demo (modelos smoke)"}
                reviewer.answer(pending, "Publicar", params)
                console.print(f"answered as {DEMO_REVIEWER}: Publicar "
                              f"(PATCH …/taskInstances/approve/-1/hitlDetails)")
            if proc.wait(timeout=1800) != 0:
                raise SystemExit(f"the daily DAG failed; see {log}")
    with state(settings) as conn:
        status = day_status(conn, day)
    assert status is not None
    for digest in status["digests"][-1:]:
        console.print(f"published digest v{digest['version']}:")
        for path in digest["paths"].values():
            console.print(f"  {settings.data_dir / 'raw' / path}", markup=False)
    tasks = ", ".join(f"{t['task']}={t['status']}" for t in status["tasks"])
    console.print(f"SQL status of {day}: {status['day']['status']}; {tasks}", markup=False)
    console.print(f"  (boeflow status --date {day}; boeflow digest show --date {day})")
    console.print('search: boeflow search "medidas urgentes DANA" --since 2024-11-06 '
                  "--until 2024-11-06")


if __name__ == "__main__":
    main()
