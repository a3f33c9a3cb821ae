"""The wheel carries the files boeflow reads at run time (issue 18, point 5): the migrations
(sql/), the Kibana saved objects (docker/kibana/) and the recorded samples (samples/), and
an installed copy run from elsewhere finds them inside itself, not in a source tree or the
working directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Run by the unpacked wheel's own Python: where each default path points and whether it exists.
PROBE = """
import json
from pathlib import Path

import boeflow
from boeflow.core.settings import Settings
from boeflow.evals import translation
from boeflow.index import kibana
from boeflow.state import db

settings = Settings()
paths = {"package": boeflow.__file__, "sql_dir": db.SQL_DIR, "settings_sql_dir": settings.sql_dir,
         "kibana": kibana.DEFAULT_FILE, "translation": translation.SHIPPED_DIR,
         "translation_source": translation.SHIPPED_SOURCE, "samples_dir": settings.samples_dir}
print(json.dumps({"paths": {k: str(v) for k, v in paths.items()},
                  "missing": [k for k, v in paths.items() if not Path(v).exists()],
                  "migrations": [m.path.name for m in db.migrations()],
                  "kibana_objects": len(kibana.load_objects())}))
"""


# Each repository directory and where the wheel carries it.
SHIPPED = {"sql": "boeflow/_shipped/sql", "docker/kibana": "boeflow/_shipped/kibana",
           "samples/translation": "boeflow/_shipped/samples/translation",
           "samples/boe": "boeflow/_shipped/samples/boe"}


def _shipped_files(top: str) -> list[str]:
    """The wheel's names for every file of the repository's ``top`` directory."""
    root = REPO / top
    return sorted(f"{SHIPPED[top]}/{p.relative_to(root).as_posix()}"
                  for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _clean_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (links kept as links), without the ``build/``
    a previous build leaves behind, whose stale copies would hide what the build misses."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source, target = REPO / name, dest / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    tree = _clean_copy(tmp_path_factory.mktemp("tree") / "boeflow")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(out), str(tree)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert build.returncode == 0, build.stderr[-3000:]
    (built,) = out.glob("boeflow-*.whl")
    return built


def test_the_wheel_lists_the_migrations_kibana_objects_and_samples(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in SHIPPED:
        expected = _shipped_files(top)
        assert expected, top
        assert [n for n in expected if n not in names] == [], top
    assert "boeflow/_shipped/sql/001_init.sql" in names
    assert "boeflow/_shipped/kibana/boeflow.ndjson" in names
    assert "boeflow/_shipped/samples/translation/pilar-dogv/dev_es.txt" in names
    # Only the saved objects of docker/, not the deployment files beside them.
    assert not [n for n in names if n.endswith(("compose.yaml", "Dockerfile"))]


def test_an_unpacked_wheel_run_elsewhere_finds_its_data_inside_itself(
        wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"  # no sql/, samples/ or docker/ here to fall back on
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # ahead of the venv's editable install
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    paths = {k: Path(v) for k, v in found["paths"].items()}
    assert paths["package"] == site / "boeflow" / "__init__.py"
    for name, path in paths.items():
        assert path.is_relative_to(site), (name, path)
    assert found["missing"] == []
    assert paths["sql_dir"] == site / "boeflow" / "_shipped" / "sql"
    assert found["migrations"] == sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    assert found["kibana_objects"] > 0
