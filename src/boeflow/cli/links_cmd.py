"""``boeflow links ID|FILE``: what an item changes or cites, block by block (issue 22)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from boeflow.cli.common import err_console, fail, print_json


def register(app: typer.Typer) -> None:
    app.command("links")(links)


def links(
    target: str = typer.Argument(..., help="A BOE id (fetched from the BOE) or an item XML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the links as JSON."),
) -> None:
    """The laws an item modifies, adds to, repeals, corrects or cites, with the text of each
    named block before and after (from the consolidated legislation API)."""
    from boeflow.boe.consolidada import ConsolidadaClient
    from boeflow.boe.http import BoeClient, ClientConfig, FetchError
    from boeflow.boe.store import RawStore, store_url
    from boeflow.core.ids import is_boe_id
    from boeflow.core.settings import get_settings
    from boeflow.core.xmlsafe import parse_xml_bytes
    from boeflow.enrich.links import links_for

    settings = get_settings()
    path = Path(target)
    with BoeClient(ClientConfig.from_settings(settings)) as client:
        if path.is_file():
            content = path.read_bytes()
        elif is_boe_id(target):
            try:
                content = client.fetch(f"/diario_boe/xml.php?id={target}", "xml").content
            except FetchError as exc:
                fail(f"cannot fetch {target}: {exc}")
        else:
            fail(f"{target!r} is neither a file nor a BOE id (BOE-A-YYYY-N)")
        try:
            root = parse_xml_bytes(content)
            result = links_for(root, ConsolidadaClient(client, RawStore(store_url(settings))))
        except (ValueError, FetchError) as exc:
            fail(f"cannot read the links of {target}: {exc}")
    if as_json:
        print_json(result)
        return
    _print(result)


def _print(result: dict[str, Any]) -> None:
    err_console.print(f"[bold]{result['boe_id']}[/]", highlight=False)
    if not result["references"]:
        err_console.print("  no references to other norms")
    for ref in result["references"]:
        title = ref["target_title"] or ref["text"] or ref["target"]
        err_console.print(f"  {ref['relation'].upper()} {ref['target']} — {title[:100]}",
                          highlight=False, markup=False)
        if ref.get("error"):
            err_console.print(f"    ({ref['error']})", highlight=False, markup=False)
        for block in ref["blocks"]:
            before = (block["before"] or {}).get("version", {}).get("id_norma", "—")
            after = (block["after"] or {}).get("version", {}).get("id_norma", "—")
            err_console.print(f"    {block['title']}: {block['status']} "
                              f"(before {before}, after {after})", highlight=False,
                              markup=False)
