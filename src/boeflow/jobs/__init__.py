"""The daily job, one plain function per step: ``which_day → fetch → index → enrich → review →
build_digest → approve → publish → deliver``. In Airflow the per-document steps run per batch
of items (``plan_batches`` → ``index_batch`` / ``enrich_batch`` → ``close_batches``), so the
grid names each batch by its BOE ids and one bad batch never stops the day.

The Airflow DAGs (``dags/boe_daily.py``, ``dags/boe_digest.py``), the CLI and the demo all
call these. Each takes the day as ISO text, a ``Settings`` (so Airflow glue can build them
from Connections) and plain values, returns a typed result (``jobs.results``: JSON for XCom
only at the Airflow edge, ``to_json``), and records its outcome for the day in PostgreSQL
(``task_runs``), so "what is done and what failed on day D" is one query (``boeflow status
--date D``). Every step is idempotent: a rerun of a finished
day downloads nothing, does no model work, publishes nothing new and sends no second e-mail.

One module per step (``jobs.fetch``, ``jobs.index``, ``jobs.enrich``, ``jobs.review``,
``jobs.digest``, ``jobs.publish``, ``jobs.deliver``; ``jobs.common`` for what they share);
this package re-exports each step's public functions and their results.
"""

from __future__ import annotations

from boeflow.jobs.common import BOE_TIMEZONE as BOE_TIMEZONE
from boeflow.jobs.common import LANGUAGES as LANGUAGES
from boeflow.jobs.common import TaskFailed as TaskFailed
from boeflow.jobs.common import is_published as is_published
from boeflow.jobs.common import peak_rss_mib as peak_rss_mib
from boeflow.jobs.common import raw_store as raw_store
from boeflow.jobs.common import recorded as recorded
from boeflow.jobs.common import resolve_day as resolve_day
from boeflow.jobs.common import resolve_settings as resolve_settings
from boeflow.jobs.deliver import Sender as Sender
from boeflow.jobs.deliver import deliver_day as deliver_day
from boeflow.jobs.deliver import message_id as message_id
from boeflow.jobs.digest import build_digest_day as build_digest_day
from boeflow.jobs.enrich import close_batches as close_batches
from boeflow.jobs.enrich import enrich_batch as enrich_batch
from boeflow.jobs.enrich import enrich_day as enrich_day
from boeflow.jobs.fetch import fetch_day as fetch_day
from boeflow.jobs.fetch import record_fetched as record_fetched
from boeflow.jobs.index import BATCH_LABEL_CHARS as BATCH_LABEL_CHARS
from boeflow.jobs.index import batch_label as batch_label
from boeflow.jobs.index import index_batch as index_batch
from boeflow.jobs.index import index_day as index_day
from boeflow.jobs.index import plan_batches as plan_batches
from boeflow.jobs.publish import APPROVAL_OPTIONS as APPROVAL_OPTIONS
from boeflow.jobs.publish import publish_day as publish_day
from boeflow.jobs.publish import record_approval_skipped as record_approval_skipped
from boeflow.jobs.publish import review_from_hitl as review_from_hitl
from boeflow.jobs.results import Batch as Batch
from boeflow.jobs.results import Built as Built
from boeflow.jobs.results import Closed as Closed
from boeflow.jobs.results import Delivered as Delivered
from boeflow.jobs.results import EnrichedBatch as EnrichedBatch
from boeflow.jobs.results import EnrichedDay as EnrichedDay
from boeflow.jobs.results import FetchedDay as FetchedDay
from boeflow.jobs.results import IndexedBatch as IndexedBatch
from boeflow.jobs.results import IndexedDay as IndexedDay
from boeflow.jobs.results import IndexOutcome as IndexOutcome
from boeflow.jobs.results import Published as Published
from boeflow.jobs.results import Reviewed as Reviewed
from boeflow.jobs.review import review_day as review_day
