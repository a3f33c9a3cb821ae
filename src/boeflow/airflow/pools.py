"""The Airflow pools boeflow's DAGs use, defined once for the DAGs, the local deployment and
the compose file's init job (tests/unit/test_docker_compose.py checks the compose copy)."""

from __future__ import annotations

# GPU/LLM work (embeddings, ALIA, Aitana) runs in this pool; `boeflow airflow up` (and the
# compose init job) create it with BOEFLOW_AIRFLOW_LLM_POOL_SLOTS slots.
LLM_POOL = "boeflow_llm"
