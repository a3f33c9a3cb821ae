"""``boeflow facts FILE|ID [--json]``: the entry-into-force and deadline card of a document."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from boeflow.cli.common import fail, print_json
from boeflow.core.settings import get_settings

out = Console(highlight=False, soft_wrap=True)


def _quote(source: dict[str, Any] | None) -> str:
    if not source:
        return ""
    where = source["path"] + (f" [{source['start']}:{source['end']}]"
                              if source.get("start") is not None else "")
    return f"{where}: «{source['quote']}»"


def facts(
    ref: str = typer.Argument(..., metavar="FILE|ID", help="BOE XML file or BOE identifier."),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON."),
) -> None:
    """Entry into force, deadlines (last day per Ley 39/2015 art. 30), amounts and
    references of a document, each with the source span it comes from. No model."""
    from boeflow.review.card import facts_card
    from boeflow.review.source import load_source

    settings = get_settings()
    try:
        doc = load_source(settings, ref)
    except (FileNotFoundError, ValueError) as exc:
        fail(f"cannot read {ref}", str(exc))
    except OSError as exc:
        fail(f"cannot read {ref}: {exc}")
    card = facts_card(doc, settings.facts_holiday_region)
    if as_json:
        print_json(card)
        return
    out.print(f"[bold]{card['boe_id']}[/] publicado {card['published'] or '?'}")
    force = card["entrada_en_vigor"]
    if force is None:
        out.print("Entrada en vigor: no consta")
    else:
        out.print(f"Entrada en vigor: {force['date'] or 'sin fecha'}"
                  + (f" ({force['reason']})" if force.get("reason") else ""), markup=False)
        if force.get("source"):
            out.print(f"  {_quote(force['source'])}", markup=False)
    out.print(f"[bold]Plazos[/] ({len(card['plazos'])})")
    for item in card["plazos"]:
        out.print(f"  • {item['text']}: {item['date'] or 'sin fecha'}"
                  + (f" ({item['reason']})" if item.get("reason") else
                     f" ({item.get('computation', '')})"), markup=False)
        out.print(f"    {_quote(item['source'])}", markup=False)
    out.print(f"[bold]Importes[/] ({len(card['importes'])})")
    for item in card["importes"][:10]:
        out.print(f"  • {item['text']}: {item['concepto'][:120]}", markup=False)
    out.print(f"[bold]Referencias[/] ({len(card['referencias'])})")
    for item in card["referencias"]:
        out.print(f"  • {item['relation']} {item['target_id']}: {item['text'][:100]}",
                  markup=False)


def register(app: typer.Typer) -> None:
    app.command("facts")(facts)
