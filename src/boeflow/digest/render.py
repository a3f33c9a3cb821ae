"""Markdown, HTML (self-contained, printable) and JSON renderings of a ``Digest``, with
Jinja2 templates from ``boeflow/digest/templates``."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from boeflow.core.ids import is_boe_id
from boeflow.core.site import BOE_TIMEZONE
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


def madrid(value: datetime) -> datetime:
    """``value`` in the BOE's time zone (a naive value is taken as UTC)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(BOE_TIMEZONE))


def _offset(local: datetime) -> str:
    offset = local.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def instante(value: datetime) -> str:
    """A time as readers in Spain read it: Madrid time with its offset, e.g.
    ``14 de noviembre de 2024, 00:30 (UTC+01:00)``."""
    local = madrid(value)
    return (f"{local.day} de {_MONTHS[local.month - 1]} de {local.year}, "
            f"{local:%H:%M} ({_offset(local)})")


def local_time(value: datetime) -> str:
    """The short form for command output: ``2024-11-14 00:30 (UTC+01:00)``, Madrid time."""
    local = madrid(value)
    return f"{local:%Y-%m-%d %H:%M} ({_offset(local)})"


def md(value: object) -> str:
    """Text safe inside Markdown: one line, special characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def md_url(value: object) -> str:
    """A link target safe inside Markdown: ``<…>`` (so parentheses, which ELIs have, cannot
    end it), with anything that could end or break it percent-encoded. The URLs of a digest
    are validated BOE URLs already (boeflow.core.site); this holds for any string."""
    text = "".join(ch if ch.isascii() and ch.isprintable() and ch not in " <>\\`\"'"
                   else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in str(value))
    return f"<{text}>"


def anchor(boe_id: str) -> str:
    """The in-page anchor of an item: its id in lower case, or (an identifier that is not a
    BOE id, from a hostile sumario) a hash of it, so no id can break out of an attribute or
    a Markdown link."""
    if is_boe_id(boe_id):
        return boe_id.lower()
    return "item-" + hashlib.sha256(boe_id.encode("utf-8", "replace")).hexdigest()[:12]


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()
                                         ).decode("ascii") + "'"


def content_security_policy(style: str | None) -> str:
    """The digest's policy: nothing loaded, no script at all (``javascript:`` URLs included),
    no forms, no base URL, no plugins; styles: the page's own ``<style>`` by its hash, or
    (``style`` None: an e-mail, whose styles are inlined into attributes) inline styles."""
    styles = _csp_hash(style) if style is not None else "'unsafe-inline'"
    return ("default-src 'none'; script-src 'none'; object-src 'none'; "
            f"style-src {styles}; img-src 'none'; font-src 'none'; connect-src 'none'; "
            "media-src 'none'; frame-src 'none'; child-src 'none'; worker-src 'none'; "
            "manifest-src 'none'; base-uri 'none'; form-action 'none'")


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
    env.filters.update(fecha=fecha, instante=instante, md=md, md_url=md_url, anchor=anchor,
                       enlaces=enlaces,
                       decision=lambda v: _DECISIONS.get(v, v),
                       estado=lambda v: _STATES.get(v, v),
                       relacion=lambda v: _RELATIONS.get(v, v))
    return env


def render_markdown(digest: Digest) -> str:
    text = environment().get_template("digest.md.jinja").render(digest=digest)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


@lru_cache(maxsize=1)
def page_css() -> str:
    """The page's style sheet (``digest.css.jinja``), inlined in a ``<style>`` element whose
    hash the page's content-security policy names."""
    return environment().get_template("digest.css.jinja").render().strip()


def render_html(digest: Digest, *, email: bool = False) -> str:
    """The page, with a restrictive content-security policy (no script, nothing fetched);
    ``email`` leaves out what mail clients drop (the language switch: both languages stay
    visible)."""
    css = page_css()
    return environment().get_template("digest.html.jinja").render(
        digest=digest, email=email, css=css,
        csp=content_security_policy(None if email else css))


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
