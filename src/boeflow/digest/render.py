"""Markdown, HTML (self-contained, printable) and JSON renderings of a ``Digest``, with
Jinja2 templates from ``boeflow/digest/templates``."""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache
from typing import Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from boeflow.digest.model import Digest, Item

Format = Literal["md", "html", "json"]
FORMATS: tuple[Format, ...] = ("md", "html", "json")

_MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
           "septiembre", "octubre", "noviembre", "diciembre")
_WEEKDAYS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
_DECISIONS = {"approved": "aprobado", "rejected": "rechazado",
              "timed_out": "sin respuesta en plazo", "without_review": "publicado sin revisión"}
_STATES = {"auto_checked": "revisado automáticamente, sin avisos",
           "needs_attention": "necesita atención", "failed": "resumen fallido",
           "not_enriched": "sin resumen"}
_RELATIONS = {"corrige": "Corrige", "corregido_por": "Corregido por", "modifica": "Modifica",
              "modificado_por": "Modificado por", "deroga": "Deroga",
              "derogado_por": "Derogado por"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def fecha(value: date) -> str:
    return f"{_WEEKDAYS[value.weekday()]} {value.day} de {_MONTHS[value.month - 1]} de {value.year}"


def instante(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M %Z").strip()


def md(value: object) -> str:
    """Text safe inside Markdown: one line, special characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def enlaces(item: Item) -> list[tuple[str, str]]:
    links = [("ELI", item.eli), ("HTML", item.url_html), ("PDF", item.url_pdf),
             ("XML", item.url_xml)]
    return [(label, url) for label, url in links if url]


@lru_cache(maxsize=1)
def environment() -> Environment:
    """HTML templates (``*.html.jinja``) are autoescaped; Markdown ones escape with ``md``."""
    env = Environment(loader=PackageLoader("boeflow.digest", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html.jinja",),
                                                   default_for_string=False, default=False),
                      undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False,
                      keep_trailing_newline=True)
    env.filters.update(fecha=fecha, instante=instante, md=md, enlaces=enlaces,
                       decision=lambda v: _DECISIONS.get(v, v),
                       estado=lambda v: _STATES.get(v, v),
                       relacion=lambda v: _RELATIONS.get(v, v))
    return env


def render_markdown(digest: Digest) -> str:
    text = environment().get_template("digest.md.jinja").render(digest=digest)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_html(digest: Digest, *, email: bool = False) -> str:
    """The page; ``email`` leaves out what mail clients drop (the language switch and the
    print script: both languages stay visible)."""
    return environment().get_template("digest.html.jinja").render(digest=digest, email=email)


def render_email_html(digest: Digest) -> str:
    """The page for an e-mail body: styles inlined into ``style`` attributes (mail clients
    ignore or strip ``<style>``), CSS variables resolved, ``@media`` rules kept for phones,
    nothing fetched from the network."""
    import css_inline

    inliner = css_inline.CSSInliner(keep_at_rules=True, resolve_css_variables=True,
                                    load_remote_stylesheets=False)
    return str(inliner.inline(render_html(digest, email=True)))


def render_json(digest: Digest) -> str:
    return digest.model_dump_json(indent=1) + "\n"


def render(digest: Digest, fmt: Format) -> str:
    if fmt == "md":
        return render_markdown(digest)
    if fmt == "html":
        return render_html(digest)
    return render_json(digest)


def review_body(digest: Digest, draft_path: str, limit: int = 40) -> str:
    """The Markdown body of the Airflow approval step: counts and every flagged item."""
    text = environment().get_template("review_body.md.jinja").render(
        digest=digest, draft_path=draft_path, limit=limit)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
