"""Where boeflow finds the files it reads at run time.

Everything the application reads ships inside the package and is found through
``importlib.resources``, in a wheel as in a development install: its own data (templates,
evaluation sets, pinned versions: :func:`package_file`) and the files that live at the
repository's top level (:func:`shipped`: the ``sql`` migrations, the recorded ``samples``,
the ``kibana`` saved objects of ``docker/kibana``), which ``src/boeflow/_shipped/`` links to
and the build copies into the wheel. Only Airflow's deployment folders (``dags``, ``plugins``)
are looked up outside the package (:func:`repo_dir`): the checkout in a development install,
else the working directory (an installed wheel run from a deployment directory)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

Shipped = Literal["sql", "samples", "kibana"]


def package_file(package: str, *parts: str) -> Path:
    """A data file shipped inside ``package`` (an ordinary directory install)."""
    return Path(str(resources.files(package).joinpath(*parts)))


def shipped(kind: Shipped, *parts: str) -> Path:
    """A file or directory of the repository's ``sql/``, ``samples/`` or ``docker/kibana/``,
    as shipped inside the installed package (``boeflow/_shipped/<kind>``)."""
    return package_file("boeflow", "_shipped", kind, *parts)


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
    """An Airflow deployment folder (``dags``, ``plugins``): in the checkout that holds the
    ``boeflow`` package, or in the working directory when there is none (an installed wheel)
    or it lacks that folder."""
    checkout = checkout_dir()
    candidate = checkout.joinpath(*parts) if checkout is not None else None
    if candidate is not None and candidate.exists():
        return candidate
    return Path.cwd().joinpath(*parts)
