"""Consolidated legislation and `boeflow links` over the replay server (issue 22): the
recorded API answers of Ley 7/1985 and Ley 39/2015, the items that amend them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from boeflow.boe.consolidada import ConsolidadaClient, ConsolidadaError, LawNotFound
from boeflow.boe.http import BoeClient, ClientConfig
from boeflow.boe.replay import BoeServer, Served
from boeflow.boe.store import RawStore
from boeflow.core.xmlsafe import parse_xml_bytes
from boeflow.enrich.links import block_titles, links_for
from tests.conftest import SAMPLES
from tests.support.cli import run_boeflow

pytestmark = pytest.mark.integration
LBRL = "BOE-A-1985-5392"
LPAC = "BOE-A-2015-10565"
API = "/datosabiertos/api/legislacion-consolidada/id"


def config(url: str) -> ClientConfig:
    return ClientConfig(base_url=url, rate_limit=0, backoff_initial=0.01, backoff_max=0.05,
                        max_attempts=2)


@pytest.fixture()
def server() -> Iterator[BoeServer]:
    with BoeServer(SAMPLES) as running:
        yield running


def item(boe_id: str) -> etree._Element:
    return parse_xml_bytes((SAMPLES / "documents" / f"{boe_id}.xml").read_bytes())


def reference(result: dict[str, Any], target: str) -> dict[str, Any]:
    return next(r for r in result["references"] if r["target"] == target)


def test_art_57_of_the_lbrl_before_and_after_rdl_7_2024(server: BoeServer,
                                                        tmp_path: Path) -> None:
    with BoeClient(config(server.url)) as client:
        result = links_for(item("BOE-A-2024-23422"),
                           ConsolidadaClient(client, RawStore(tmp_path)))
    assert result["boe_id"] == "BOE-A-2024-23422"
    lbrl = reference(result, LBRL)
    assert lbrl["relation"] == "modifica"
    assert lbrl["target_title"].startswith("Ley 7/1985, de 2 de abril")
    assert lbrl["target_eli"] == "https://www.boe.es/eli/es/l/1985/04/02/7"
    [block] = lbrl["blocks"]
    assert (block["block_id"], block["title"], block["status"]) == (
        "a57", "Artículo 57", "consolidated")
    assert block["before"]["version"] == {"id_norma": "BOE-A-2013-13756",
                                          "fecha_vigencia": "2013-12-31"}
    assert block["after"]["version"] == {"id_norma": "BOE-A-2024-23422",
                                         "fecha_vigencia": "2024-11-13"}
    assert "4. Asimismo" in block["after"]["text"]
    assert "4. Asimismo" not in block["before"]["text"]
    assert "Se modifica por" not in block["after"]["text"]  # editorial notes left out


def test_new_additional_provision_9_of_ley_39_2015(server: BoeServer) -> None:
    with BoeClient(config(server.url)) as client:
        result = links_for(item("BOE-A-2024-22928"), ConsolidadaClient(client))
    lpac = reference(result, LPAC)
    assert lpac["relation"] == "añade"
    [block] = lpac["blocks"]
    assert block["title"] == "Disposición adicional novena"
    assert block["status"] == "consolidated"
    assert block["before"] is None
    assert block["after"]["version"]["id_norma"] == "BOE-A-2024-22928"
    assert block["after"]["text"].startswith("Disposición adicional novena. Suspensión")


def test_a_law_the_api_does_not_have_is_recorded_as_not_found(server: BoeServer) -> None:
    with BoeClient(config(server.url)) as client:
        result = links_for(item("BOE-A-2024-22928"), ConsolidadaClient(client))
    civil_protection = next(r for r in result["references"]
                            if r["target"] == "BOE-A-2015-7730")
    assert civil_protection["relation"] == "de_conformidad"
    assert civil_protection["error"] == "not in the consolidated legislation API"
    assert civil_protection["target_title"].startswith("Ley 17/2015")  # from the norm table
    assert [(b["title"], b["status"], b["before"], b["after"])
            for b in civil_protection["blocks"]] == [("Artículo 23", "not_found", None, None)]


def test_a_block_the_law_does_not_have(server: BoeServer, tmp_path: Path) -> None:
    source = (SAMPLES / "documents" / "BOE-A-2024-23422.xml").read_bytes()
    changed = source.replace(b"<texto>el art. 57 de la Ley 7/1985", b"<texto>el art. 999 de la "
                             b"Ley 7/1985", 1)
    assert changed != source
    with BoeClient(config(server.url)) as client:
        result = links_for(parse_xml_bytes(changed), ConsolidadaClient(client))
    [block] = reference(result, LBRL)["blocks"]
    assert block == {"block_id": None, "title": "Artículo 999", "before": None, "after": None,
                     "status": "not_found"}


def test_an_amendment_not_yet_consolidated(tmp_path: Path) -> None:
    """A recording of the LBRL made before RDL 7/2024 was consolidated (its version of
    art. 57 removed): the new wording comes from the item's own «…» text."""
    samples = tmp_path / "samples"
    shutil.copytree(SAMPLES / "documents", samples / "documents")
    (samples / "consolidada" / LBRL).mkdir(parents=True)
    for name in ("metadatos.xml", "analisis.xml"):
        shutil.copy(SAMPLES / "consolidada" / LBRL / name, samples / "consolidada" / LBRL)
    texto = parse_xml_bytes((SAMPLES / "consolidada" / LBRL / "texto.xml").read_bytes())
    removed = 0
    for version in texto.iterfind(".//version[@id_norma='BOE-A-2024-23422']"):
        version.getparent().remove(version)  # type: ignore[union-attr]
        removed += 1
    assert removed >= 1
    (samples / "consolidada" / LBRL / "texto.xml").write_bytes(
        etree.tostring(texto, xml_declaration=True, encoding="utf-8"))
    with BoeServer(samples) as server, BoeClient(config(server.url)) as client:
        result = links_for(item("BOE-A-2024-23422"), ConsolidadaClient(client))
    [block] = reference(result, LBRL)["blocks"]
    assert block["status"] == "pending_consolidation"
    assert block["before"]["version"]["id_norma"] == "BOE-A-2013-13756"
    assert block["after"]["source"] == "amending_item"
    assert block["after"]["version"] == {"id_norma": "BOE-A-2024-23422", "fecha_vigencia": None}
    assert block["after"]["text"].startswith("4. Asimismo, en el ámbito de las relaciones")


def test_texts_are_fetched_once_per_consolidation_update(server: BoeServer,
                                                         tmp_path: Path) -> None:
    store = RawStore(tmp_path)
    with BoeClient(config(server.url)) as client:
        ConsolidadaClient(client, store).law(LBRL)
        ConsolidadaClient(client, store).law(LBRL)  # a new task: the store has the text
    assert len(server.requests_for(f"{API}/{LBRL}/texto")) == 1
    assert len(server.requests_for(f"{API}/{LBRL}/metadatos")) == 2
    assert store.exists(f"consolidada/{LBRL}/20260609T110103Z/texto.xml")


def test_block_endpoint_and_identity_checks(server: BoeServer) -> None:
    with BoeClient(config(server.url)) as client:
        consolidada = ConsolidadaClient(client)
        block = consolidada.block(LBRL, "a57")
        assert block is not None and block.titulo == "Artículo 57"
        assert [v.id_norma for v in block.versions] == [LBRL, "BOE-A-2013-13756",
                                                        "BOE-A-2024-23422"]
        assert consolidada.block(LBRL, "a9999") is None
        assert consolidada.block(LBRL, "../../etc") is None
        with pytest.raises(LawNotFound):
            consolidada.block("BOE-A-2099-1", "a1")
        with pytest.raises(LawNotFound):
            consolidada.law("BOE-A-2099-1")
        # An answer about another law is refused, never cached or used.
        server.overrides[f"{API}/{LPAC}/metadatos"] = Served(
            (SAMPLES / "consolidada" / LBRL / "metadatos.xml").read_bytes(), "application/xml")
        with pytest.raises(ConsolidadaError, match="got BOE-A-1985-5392"):
            consolidada.law(LPAC)


def test_block_names_in_reference_texts() -> None:
    assert block_titles("los arts. 3, 3 bis, 5 y 11.2") == [
        "Artículo 3", "Artículo 3 bis", "Artículo 5", "Artículo 11"]
    assert block_titles("la disposición adicional 9 a la Ley 39/2015") == [
        "Disposición adicional novena"]
    assert block_titles("la disposición final 5") == ["Disposición final quinta"]
    assert block_titles("la disposición adicional 21 bis") == [
        "Disposición adicional vigésima primera bis"]
    assert block_titles("el anexo II") == ["Anexo II"]
    assert block_titles("el Real Decreto 307/2005, de 18 de marzo") == []


def test_cli_links_json_and_clear_errors(server: BoeServer, tmp_path: Path) -> None:
    env = {**os.environ, "BOEFLOW_BOE_BASE_URL": server.url, "BOEFLOW_BOE_RATE_LIMIT": "0",
           "BOEFLOW_DATA_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_boeflow(["links", *args], env=env, timeout=120)

    by_id = run("BOE-A-2024-23422", "--json")
    assert by_id.returncode == 0, by_id.stderr
    data = json.loads(by_id.stdout)
    assert set(data) == {"boe_id", "references"}
    [block] = reference(data, LBRL)["blocks"]
    assert block["status"] == "consolidated"
    assert set(block) == {"block_id", "title", "before", "after", "status"}
    by_file = run(str(SAMPLES / "documents" / "BOE-A-2024-22928.xml"))
    assert by_file.returncode == 0, by_file.stderr
    assert "Disposición adicional novena: consolidated" in by_file.stderr
    for args, expected in ((("BOE-A-2099-1",), "cannot fetch BOE-A-2099-1"),
                           (("nonsense",), "neither a file nor a BOE id")):
        failed = run(*args)
        assert failed.returncode == 1
        assert expected in failed.stderr and "Traceback" not in failed.stderr


def test_indice_and_analisis_of_a_recorded_law(server: BoeServer, tmp_path: Path) -> None:
    store = RawStore(tmp_path)
    with BoeClient(config(server.url)) as client:
        consolidada = ConsolidadaClient(client, store)
        index = consolidada.indice("BOE-A-2013-12887")
        assert index[:2] == [("preambulo", ""), ("tpreliminar", "TÍTULO PRELIMINAR")]
        assert ("a1", "Artículo 1") in index
        assert b"<referencias>" in consolidada.analisis(LBRL)
    assert store.exists("consolidada/BOE-A-2013-12887/20260102T105216Z/indice.xml")
