"""Where boeflow finds the files it ships: data inside the package through
``importlib.resources`` (templates, evaluation sets, pinned versions), and the repository's
top-level directories (``dags``, ``plugins``, ``sql``, ``samples``, ``docker``) for a checkout
installed in development mode, falling back to the working directory (an installed wheel run
from a deployment directory that holds them)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_file(package: str, *parts: str) -> Path:
    """A data file shipped inside ``package`` (an ordinary directory install)."""
    return Path(str(resources.files(package).joinpath(*parts)))


def repo_dir(*parts: str) -> Path:
    """A top-level directory of the checkout that holds the installed ``boeflow`` package
    (``src/boeflow``), or of the working directory when there is none."""
    checkout = Path(str(resources.files("boeflow"))).resolve().parents[1]
    candidate = checkout.joinpath(*parts)
    return candidate if candidate.exists() else Path.cwd().joinpath(*parts)
