"""One typed settings object for the whole of boeflow, composed of groups.

Each group is a class holding its fields, their one default and their description:
``core``, ``fetch``, ``parse``, ``index``, ``models``, ``enrich``, ``review``, ``digest``,
``state``, ``airflow`` (what the application reads) and ``operations`` (the local services
and their deployment, read by ``boeflow_ops`` only). ``Settings`` composes them in one flat
namespace: a field keeps its name whatever its group (``settings.boe_rate_limit``,
``BOEFLOW_BOE_RATE_LIMIT``); ``Settings.groups()`` and ``boeflow config show --group`` tell
which group each belongs to.

Sources, highest priority first: explicit arguments, ``BOEFLOW_*`` environment variables,
a TOML file (``BOEFLOW_CONFIG`` or ``./boeflow.toml``), then the defaults below, which name
the real production models. The ``smoke`` profile points every model at the tiny local
models built by ``boeflow models smoke`` so the pipeline runs offline on a laptop or in CI.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from boeflow.core.paths import repo_dir, shipped
from boeflow.core.site import BOE_ORIGIN, check_site_origin

Profile = Literal["production", "smoke"]
Device = Literal["auto", "cpu", "cuda", "mps"]

PRODUCTION_EMBEDDER = "BAAI/bge-m3"
ALTERNATIVE_EMBEDDER = "littlejohn-ai/bge-m3-spa-law-qa"
PRODUCTION_SUMMARIZER = "SINAI/ALIA-legal-administrative-7B-Instruct"
PRODUCTION_TRANSLATOR = "gplsi/Aitana-2B-SI-Instruct-Aligned"

# Sub-directories of the smoke model directory, as written by boeflow.models.smoke.
SMOKE_EMBEDDER = "embedder"
SMOKE_SUMMARIZER = "summarizer"
SMOKE_TRANSLATOR = "translator"


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "boeflow"


def _default_samples_dir() -> Path:
    """The recorded BOE samples (the repository's ``samples/boe``, shipped in the package)."""
    return shipped("samples", "boe")


def _repo_dir(name: str) -> Path:
    """An Airflow deployment folder (``dags``, ``plugins``) of the checkout or the working
    directory."""
    return repo_dir(name)


# Settings holding URLs that may embed credentials (``https://user:pass@host``).
URL_SETTINGS = ("es_url", "raw_store_url", "gen_http_url", "embed_remote_url", "boe_base_url")


def redact_url(url: str | None) -> str | None:
    """``url`` with any ``user:password@`` replaced by ``***@``: for everything printed or
    logged, since URLs of Elasticsearch, the raw store or a model server may carry secrets."""
    if not url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def _config_file() -> Path:
    return Path(os.environ.get("BOEFLOW_CONFIG", "boeflow.toml"))


class CoreSettings(BaseModel):
    """What every part of boeflow shares: the profile (production or smoke models) and where
    the data lives."""

    profile: Profile = Field("production", description="production or smoke (tiny local models)")
    data_dir: Path = Field(default_factory=lambda: _default_home() / "data",
                           description="raw store and derived data")
    samples_dir: Path = Field(default_factory=_default_samples_dir,
                              description="recorded BOE publications used by tests and the demo")


class FetchSettings(BaseModel):
    """Fetching the BOE (``boeflow.boe.http``, ``boeflow.boe.fetch``, ``boeflow fetch``): the
    polite HTTP client, its deadlines and retries, the raw store. ``ClientConfig`` takes its
    defaults from these fields."""

    boe_base_url: str = Field(BOE_ORIGIN, description="where BOE URLs are fetched from (the "
                              "replay server in tests); links shown to readers always point "
                              "at the BOE site itself")
    boe_user_agent: str = Field(
        "boeflow/0.1.0 (BOE open-data client; +https://www.boe.es/datosabiertos/)",
        description="identifying User-Agent sent with every BOE request")
    boe_rate_limit: float = Field(2.0, ge=0, description="max BOE requests per second "
                                  "(global for the process); 0 lifts the limit (tests only)")
    boe_connect_timeout: float = Field(10.0, gt=0, description="seconds")
    boe_read_timeout: float = Field(30.0, gt=0, description="seconds between bytes")
    boe_request_deadline: float = Field(300.0, gt=0, description="seconds for a whole request: "
                                        "connect, redirects, headers and body")
    boe_max_attempts: int = Field(5, ge=1, description="tries per URL on retriable faults")
    boe_backoff_initial: float = Field(1.0, ge=0, description="first retry wait, seconds")
    boe_backoff_max: float = Field(60.0, ge=0, description="longest retry wait, seconds")
    boe_retry_after_max: float = Field(120.0, ge=0, description="cap on a 429/503 Retry-After, "
                                       "seconds")
    boe_url_budget: float = Field(900.0, gt=0, description="seconds spent on one URL across "
                                  "all its attempts and waits")
    boe_max_redirects: int = Field(3, ge=0, le=10, description="redirect hops per request, each "
                                   "kept on the BOE base URL's origin")
    boe_max_items_per_sumario: int = Field(20_000, gt=0, description="a sumario listing more "
                                           "items is refused (a busy day has ~1,000)")
    boe_max_bytes: int = Field(200 * 1024 * 1024, gt=0, description="size cap per download")
    boe_formats: list[Literal["xml", "html", "pdf"]] = Field(
        ["xml"], description="representations fetched per item (pydantic copies the default)")
    boe_sumario_format: Literal["xml", "json"] = Field("xml", description="representation of "
                                                       "the day's sumario asked from the API")
    boe_legacy_fallback: bool = Field(True, description="try the legacy xml.php sumario "
                                      "when the API has none for a day")
    boe_manifest_checkpoint: float = Field(2.0, ge=0, description="seconds between manifest "
                                           "checkpoints during a day")
    raw_store_url: str | None = Field(None, description="fsspec URL or path of the raw store "
                                      "(default: <data_dir>/raw); shared by all workers")


class ParseSettings(BaseModel):
    """Bounds of the parsers (``boeflow.parse.limits``): hostile or broken inputs are refused,
    never a hang or a memory blow-up."""

    parse_max_bytes: int = Field(100 * 1024 * 1024, gt=0, description="largest input file "
                                 "parsed, bytes (the biggest BOE item is a few MB)")
    parse_max_depth: int = Field(200, ge=16, description="deepest element nesting accepted in "
                                 "HTML (XML: libxml2's own limit of 256)")
    parse_max_table_cells: int = Field(200_000, gt=0, description="cells of one table after "
                                       "expanding colspan/rowspan")
    parse_max_span: int = Field(1000, gt=0, description="largest colspan/rowspan honoured "
                                "(and never more than the table's own size)")


class IndexSettings(BaseModel):
    """Elasticsearch as the application uses it (``boeflow.index``): where it answers, the
    alias prefix, request deadlines and retries, the shape of new indices."""

    es_url: str = Field("http://127.0.0.1:9200", description="Elasticsearch the pipeline reads "
                        "and writes (credentials in the URL are redacted when shown)")
    es_index_prefix: str = Field("", description="prefix of boeflow's aliases (tests use one)")
    es_request_timeout: float = Field(
        10.0, gt=0, description="seconds an Elasticsearch request may take (searches, lookups); "
        "a silent server is reported after this, timeouts are not retried")
    es_bulk_timeout: float = Field(120.0, gt=0, description="seconds for one bulk request or "
                                   "refresh while indexing")
    es_max_retries: int = Field(2, ge=0, le=10, description="retries of a request after a "
                                "connection error or a 502/503/504")
    es_shards: int = Field(1, ge=1, le=64, description="primary shards of new indices")
    es_replicas: int = Field(0, ge=0, le=8, description="replicas per shard (applied to "
                             "existing indices by `boeflow es setup`/`index`)")
    es_vector_index: Literal["hnsw", "int8_hnsw", "bbq_hnsw"] = Field(
        "int8_hnsw", description="dense_vector index_options type of new chunk indices "
        "(chosen by benchmarks/index_search.py, see docs/search.md)")


class ModelSettings(BaseModel):
    """Which models run and how they are loaded (``boeflow.models``, ``boeflow.index.embed``):
    an id on the Hugging Face hub or a local directory, a revision pinning a commit, the
    embedder's batch and sequence length or its remote server, the device, offline mode and
    the smoke models' directory."""

    embed_model: str = Field(PRODUCTION_EMBEDDER, description="embedder: hub id or local "
                             "directory (drop-in: littlejohn-ai/bge-m3-spa-law-qa)")
    embed_revision: str | None = Field(None, description="hub commit the embedder is pinned to")
    embed_max_seq_length: int = Field(512, description="tokens per embedded chunk")
    embed_batch_size: int = Field(16, description="chunks per embedding call")
    embed_remote_url: str | None = Field(
        None, description="text-embeddings-inference server shared by workers (POST /embed)")
    summarizer_model: str = Field(PRODUCTION_SUMMARIZER, description="summariser: hub id or "
                                  "local directory")
    summarizer_revision: str | None = Field(None, description="hub commit the summariser is "
                                            "pinned to")
    translator_model: str = Field(PRODUCTION_TRANSLATOR, description="Spanish → Valencian "
                                  "translator: hub id or local directory")
    translator_revision: str | None = Field(None, description="hub commit the translator is "
                                            "pinned to")
    device: Device = Field("auto", description="auto (CUDA if present, else CPU), cpu, cuda, "
                           "mps")
    hf_offline: bool = Field(True, description="never reach the Hugging Face hub at run time")
    smoke_models_dir: Path = Field(default_factory=lambda: _default_home() / "smoke-models",
                                   description="where `boeflow models smoke` writes and the "
                                   "smoke profile loads from")


class EnrichSettings(BaseModel):
    """Generation, summaries, facts and translation (``boeflow.enrich``): the generation
    backend (in process or an OpenAI-compatible server) and its decoding, the summary and
    translation budgets, the translation backend, the enrich step's window."""

    gen_backend: Literal["transformers", "http"] = Field(
        "transformers", description="in-process transformers or an OpenAI-compatible server")
    gen_http_url: str = Field("http://127.0.0.1:8000/v1",
                              description="base URL of the OpenAI-compatible API (vllm serve)")
    gen_http_model: str | None = Field(None, description="served model name; default: model id")
    gen_http_api_key: SecretStr | None = Field(None, description="API key of the "
                                               "OpenAI-compatible server")
    gen_http_timeout: float = Field(300.0, description="seconds per request")
    gen_http_concurrency: int = Field(4, ge=1, description="requests in flight at once")
    gen_http_retries: int = Field(3, ge=1, description="attempts per request")
    gen_batch_size: int = Field(4, description="prompts per in-process generate call")
    gen_batch_tokens: int | None = Field(
        None, ge=1, description="padded prompt tokens per generate call (longest prompt x "
        "prompts); default 16384 on CPU (long prompts prefilled row by row), unbounded on CUDA")
    max_new_tokens: int = Field(512, description="output cap of one generation (a summary)")
    gen_do_sample: bool = Field(False, description="greedy decoding unless set")
    gen_temperature: float = Field(0.7, description="sampling temperature (with gen_do_sample)")
    gen_top_p: float = Field(0.95, description="nucleus sampling (with gen_do_sample)")
    gen_repetition_penalty: float = Field(1.0, description="1.0: none")
    gen_context_tokens: int | None = Field(
        None, description="cap on prompt + output tokens; default: the model's context length")
    gen_structured: bool = Field(
        True, description="decode summaries under their JSON schema (llguidance in process, "
        "response_format json_schema over HTTP); the repair loop remains the fallback")
    summary_short_max_new_tokens: int = Field(256, description="sections 2 and 5 one-pass")
    summary_map_max_new_tokens: int = Field(384, description="notes per map/reduce prompt")
    summary_max_repairs: int = Field(2, ge=0, description="re-prompts after invalid JSON")
    summary_resumen_max_chars: int = Field(1200, description="longest resumen of a summary")
    summary_short_resumen_max_chars: int = Field(500, description="longest resumen of a "
                                                 "one-pass summary (sections 2 and 5)")
    facts_holiday_region: str = Field(
        "VC", description="autonomous community (ISO 3166-2:ES code) whose holidays, with "
        "Spain's, are not business days in deadlines (Ley 39/2015 art. 30); empty: national")
    translate_max_new_tokens: int = Field(1024, description="output cap of one translated piece")
    translate_mask_entities: bool = Field(
        True, description="replace ids, numbers and citations by placeholders while translating")
    translate_backend: Literal["apertium", "model", "http"] | None = Field(
        None, description="who translates summaries and titles: apertium (rule-based, CPU), "
        "model (the translator model in process) or http (the translator model on the "
        "OpenAI-compatible server); default: apertium on the smoke profile, model otherwise")
    translate_apertium_mode: str = Field(
        "spa-cat_valencia", description="Apertium mode for Spanish → Valencian (also "
        "spa-cat_valencia_uni, spa-cat_valencia_iec2017)")
    translate_apertium_mode_to_es: str = Field("cat-spa", description="Apertium mode for "
                                               "Valencian → Spanish")
    translate_titles: bool = Field(
        True, description="translate every sumario title, department and section name of the "
        "day to Valencian with Apertium (cached per text)")
    enrich_window_docs: int = Field(
        32, ge=1, description="documents planned and batched together by the enrich step")


class ReviewSettings(BaseModel):
    """Review of the day: the automatic check of model translations against Apertium's (made
    while translating, reported by the review as referencia) and the human approval of the
    draft digest in Airflow (``boeflow.airflow.approval``, ``boeflow.airflow.notify``): how
    long it waits, who is told and reminded, what happens when nobody answers."""

    translate_reference: bool = Field(
        True, description="when a model translates, also translate with Apertium and check "
        "the model's translation against it (review: referencia)")
    review_reference_min_chrf: float = Field(
        65.0, ge=0, le=100, description="lowest chrF of a model translation against "
        "Apertium's before the review flags it (calibrated on the DOGV pairs, docs/review.md)")
    digest_review_timeout_hours: float = Field(
        48.0, gt=0, description="how long the Airflow approval step waits for a reviewer")
    digest_publish_on_timeout: bool = Field(
        False, description="publish unreviewed (marked so) when nobody answers in time; "
        "default: publish nothing and leave the day pending")
    digest_reviewers: list[str] = Field(
        default_factory=list, description="addresses told by e-mail (the SMTP Connection) "
        "that a day's draft waits for review, and reminded at the review deadline")
    digest_review_apprise_conn_id: str | None = Field(
        None, description="Airflow Connection of an Apprise channel (Slack, Matrix, ntfy…) "
        "that is told too; needs apache-airflow-providers-apprise")
    digest_review_deadline: str = Field(
        "14:00", pattern=r"^(([01]\d|2[0-3]):[0-5]\d|\+\d+|off)$",
        description="when reviewers are reminded that the day is not approved: a Madrid clock "
        "time on the run's day (HH:MM; measured from the 09:00 scheduled start, so a run "
        "queued later is reminded as many hours later), +SECONDS after the run is queued, or off")
    digest_workbench_url: str | None = Field(
        None, description="base URL of the Airflow UI in reviewers' links (default: the "
        "api-server's [api] base_url)")


class DigestSettings(BaseModel):
    """The published digest (``boeflow.digest``, ``boeflow.jobs.publish``,
    ``boeflow.jobs.deliver``): watchlists, recipients and mail, the links to the BOE site and
    the Atom feed."""

    digest_watchlists_file: Path | None = Field(
        None, description="TOML file with [[watchlist]] tables (name, materias, departments, "
        "rangos, keywords, query, recipients)")
    digest_watch_min_similarity: float = Field(
        0.6, ge=-1.0, le=1.0, description="cosine similarity a watchlist query's kNN match "
        "needs (with BM25 agreement); belongs to the embedding model, see docs/digest.md. "
        "Not used with a smoke embedder: queries are then BM25 only")
    digest_recipients: list[str] = Field(
        default_factory=list, description="addresses that receive every published digest")
    digest_mail_from: str = Field("boeflow@localhost", description="From: of digest e-mails")
    digest_smtp_conn_id: str = Field("boeflow_smtp",
                                     description="Airflow Connection with the SMTP server")
    digest_site_url: str = Field(BOE_ORIGIN, description="base of the links to BOE items in "
                                 "digests: https on a BOE host (boeflow.core.site.BOE_HOSTS), "
                                 "no path")
    digest_feed_url: str = Field("urn:boeflow:digests", description="id of the Atom feed; "
                                 "set to the https URL where digests/feed.xml is served and "
                                 "entries link to the digest pages next to it")

    @field_validator("digest_site_url")
    @classmethod
    def _boe_site(cls, value: str) -> str:
        return check_site_origin(value)

    @field_validator("digest_feed_url")
    @classmethod
    def _feed_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme.lower() == "urn" or (parts.scheme.lower() == "https" and parts.netloc
                                              and "@" not in parts.netloc):
            return value.strip()
        raise ValueError(f"{value[:100]!r} is neither a urn: nor an https:// URL")


class StateSettings(BaseModel):
    """The PostgreSQL state database (``boeflow.state``): the connection, its deadlines (a
    stalled server is one line, never a hang) and the migrations."""

    pg_host: str = Field("127.0.0.1", description="PostgreSQL host")
    pg_port: int = Field(5432, description="PostgreSQL port")
    pg_user: str = Field("boeflow", description="PostgreSQL role")
    pg_password: SecretStr = Field(SecretStr("boeflow"),
                                   description="loopback default, override in production")
    pg_database: str = Field("boeflow", description="boeflow's state database")
    pg_connect_timeout: int = Field(10, ge=2, le=600, description="seconds to open a "
                                    "connection, authentication included (libpq connect_timeout)")
    pg_statement_timeout: float = Field(
        30.0, gt=0, le=86_400, description="seconds one SQL statement may run, lock waits "
        "included (the server's statement_timeout); the client gives up on a server silent "
        "for this + 5 s (boeflow.state.db.DEADLINE_GRACE_S)")
    pg_idle_in_transaction_timeout: float = Field(
        600.0, gt=0, le=86_400, description="seconds a session may sit idle inside a "
        "transaction before the server ends it (idle_in_transaction_session_timeout)")
    sql_dir: Path = Field(default_factory=lambda: shipped("sql"),
                          description="the numbered migrations (sql/NNN_name.sql)")

    @property
    def pg_dsn(self) -> str:
        return (f"postgresql://{self.pg_user}:{self.pg_password.get_secret_value()}"
                f"@{self.pg_host}:"
                f"{self.pg_port}/{self.pg_database}")


class AirflowSettings(BaseModel):
    """The DAGs in Airflow (``boeflow.airflow``, ``boeflow.jobs``): the size of a mapped
    batch and the retries of I/O tasks. How Airflow itself is deployed is operations."""

    airflow_batch_size: int = Field(25, ge=1, le=500, description="BOE items per mapped "
                                    "index/enrich task of boe_daily")
    airflow_retries: int = Field(3, ge=0, description="retries of an I/O task of the DAGs")
    airflow_retry_delay_s: float = Field(120.0, ge=0, description="first retry wait, seconds "
                                         "(doubles on every attempt)")
    airflow_retry_max_delay_s: float = Field(1800.0, ge=0, description="longest retry wait")


class OperationsSettings(BaseModel):
    """The local services and their deployment (``boeflow_ops``, ``boeflow services``,
    ``boeflow airflow up``, docker/compose.yaml): installs and logs, the Elasticsearch JVM and
    nodes, the OS user, Redis, the local Airflow's processes, ports, admin user, folders and
    pool size, and the loopback rule. Nothing in the application reads these."""

    state_dir: Path = Field(default_factory=lambda: Path.cwd() / ".services",
                            description="project-local service installs, data and logs")
    service_user: str = Field("boeflow", description="unprivileged OS user running services")
    es_heap: str = Field("512m", description="JVM heap of each local Elasticsearch node")
    es_java_home: Path | None = Field(None, description="JDK for Elasticsearch (21+ for 9.x)")
    es_nodes: int = Field(1, ge=1, le=5, description="Elasticsearch nodes `boeflow services "
                          "start` runs on loopback (HTTP ports from BOEFLOW_ES_URL's upward)")
    pg_airflow_database: str = Field("airflow", description="Airflow metadata database")
    redis_host: str = Field("127.0.0.1", description="Redis (Celery broker) bind address")
    redis_port: int = Field(6379, description="Redis port")
    redis_password: SecretStr | None = Field(None, description="Redis password (requirepass)")
    airflow_host: str = Field("127.0.0.1", description="Airflow api-server bind address")
    airflow_port: int = Field(8080, description="Airflow api-server port (UI, REST, execution API)")
    airflow_api_workers: int = Field(1, ge=1, description="api-server worker processes")
    airflow_worker_concurrency: int = Field(2, ge=1, description="task slots of each Celery worker")
    airflow_workers: int = Field(1, ge=1, le=8, description="Celery worker processes of the "
                                 "local deployment (each with its own node name and log)")
    airflow_llm_pool_slots: int = Field(1, ge=1, description="slots of the boeflow_llm pool "
                                        "(GPU/LLM tasks running at once)")
    airflow_admin_user: str = Field("admin", description="Airflow UI admin user")
    airflow_dags_dir: Path = Field(default_factory=lambda: _repo_dir("dags"),
                                   description="DAG folder of the local Airflow")
    airflow_plugins_dir: Path = Field(default_factory=lambda: _repo_dir("plugins"),
                                      description="plugins folder of the local Airflow")
    services_allow_non_loopback: bool = Field(
        False, description="let local services bind to a non-loopback address (each also needs "
        "its own credentials: a non-default PG_PASSWORD, a REDIS_PASSWORD)")

    @property
    def airflow_url(self) -> str:
        """Where the local Airflow UI/API answers."""
        return f"http://{self.airflow_host}:{self.airflow_port}"

    @property
    def celery_broker_url(self) -> str:
        password = self.redis_password.get_secret_value() if self.redis_password else ""
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/0"


GROUPS: dict[str, type[BaseModel]] = {
    "core": CoreSettings,
    "fetch": FetchSettings,
    "parse": ParseSettings,
    "index": IndexSettings,
    "models": ModelSettings,
    "enrich": EnrichSettings,
    "review": ReviewSettings,
    "digest": DigestSettings,
    "state": StateSettings,
    "airflow": AirflowSettings,
    "operations": OperationsSettings,
}
"""The groups of settings by name, in the order ``boeflow config show`` prints them."""

# The groups whose fields the application (``boeflow``, the DAGs) reads at run time;
# ``operations`` is for ``boeflow_ops`` and the deployment files only.
RUNTIME_GROUPS = tuple(name for name in GROUPS if name != "operations")


class Settings(  # the groups in reverse: pydantic orders the fields base class first
    OperationsSettings,
    AirflowSettings,
    StateSettings,
    DigestSettings,
    ReviewSettings,
    EnrichSettings,
    ModelSettings,
    IndexSettings,
    ParseSettings,
    FetchSettings,
    CoreSettings,
    BaseSettings,
):
    """All knobs of boeflow, one flat namespace composed of the groups above. Every field can
    be set as ``BOEFLOW_<FIELD>`` and read as ``settings.<field>``; ``Settings.groups()``
    tells which group each belongs to."""

    model_config = SettingsConfigDict(env_prefix="BOEFLOW_", extra="ignore")

    @classmethod
    def groups(cls) -> dict[str, list[str]]:
        """``{group name: [field names]}`` for every group, in declaration order."""
        return {name: list(group.model_fields) for name, group in GROUPS.items()}

    @model_validator(mode="after")
    def _apply_profile(self) -> Settings:
        if self.profile == "smoke":
            explicit = self.model_fields_set
            base = self.smoke_models_dir
            if "embed_model" not in explicit:
                self.embed_model = str(base / SMOKE_EMBEDDER)
            if "summarizer_model" not in explicit:
                self.summarizer_model = str(base / SMOKE_SUMMARIZER)
            if "translator_model" not in explicit:
                self.translator_model = str(base / SMOKE_TRANSLATOR)
        if self.translate_backend is None:
            # Without a GPU the smoke translator is random by design: Apertium gives a smoke
            # demo real Valencian. Production translates with the translator model.
            self.translate_backend = "apertium" if self.profile == "smoke" else "model"
        return self

    @property
    def is_smoke(self) -> bool:
        return self.profile == "smoke"

    @property
    def airflow_sql_alchemy_conn(self) -> str:
        return (f"postgresql+psycopg2://{self.pg_user}:{self.pg_password.get_secret_value()}"
                f"@{self.pg_host}:"
                f"{self.pg_port}/{self.pg_airflow_database}")

    @property
    def celery_result_backend(self) -> str:
        """Celery stores task results in Airflow's metadata database (SQLAlchemy URL)."""
        return "db+" + self.airflow_sql_alchemy_conn

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml, file_secret_settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` in tests)."""
    return Settings()
