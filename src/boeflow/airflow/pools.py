"""The Airflow pools boeflow's DAGs use, defined once for the DAGs, the local deployment and
the compose file's init job (docker/compose.yaml cannot import it: its one copy is checked by
tests/unit/test_settings_groups.py). The pool's size is the operations setting
``airflow_llm_pool_slots``."""

from __future__ import annotations

# GPU/LLM work (embeddings, ALIA, Aitana) runs in this pool; `boeflow airflow up` (and the
# compose init job) create it with BOEFLOW_AIRFLOW_LLM_POOL_SLOTS slots.
LLM_POOL = "boeflow_llm"
