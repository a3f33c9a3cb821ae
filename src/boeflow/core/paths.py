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


def checkout_dir() -> Path | None:
    """The source checkout the ``boeflow`` package runs from (``<checkout>/src/boeflow`` with
    ``<checkout>/pyproject.toml``: a development install), or None for an installed wheel,
    whose ``site-packages`` is no source tree to look into."""
    package = Path(str(resources.files("boeflow"))).resolve()
    checkout = package.parents[1]
    if package.parent.name == "src" and (checkout / "pyproject.toml").is_file():
        return checkout
    return None


def repo_dir(*parts: str) -> Path:
    """A top-level directory of the checkout that holds the ``boeflow`` package, or of the
    working directory when there is none (an installed wheel) or it lacks that directory."""
    checkout = checkout_dir()
    candidate = checkout.joinpath(*parts) if checkout is not None else None
    if candidate is not None and candidate.exists():
        return candidate
    return Path.cwd().joinpath(*parts)
