"""Fuzzing profiles (issue 9).

``make test`` runs the ``ci`` profile: a bounded number of examples per target, so the whole
suite stays well under two minutes on two cores. ``BOEFLOW_FUZZ=deep pytest tests/fuzz``
runs many more examples (and prints Hypothesis statistics with ``--hypothesis-show-statistics``).
The Hypothesis database lives in the pytest cache, so a failure found once is replayed first
next time.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    # Hypothesis' deadline is wall-clock time; tests/fuzz/bounds.py bounds CPU time instead.
    "deadline": None,
    "print_blob": True,
}
settings.register_profile("ci", max_examples=40, derandomize=True, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("deep", max_examples=3000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("BOEFLOW_FUZZ", "ci"))



@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The deep profile runs for as long as its examples take (hours on two cores)."""
    if os.environ.get("BOEFLOW_FUZZ") == "deep":
        for item in items:
            if item.path.parent.name == "fuzz":
                item.add_marker(pytest.mark.timeout(0))
