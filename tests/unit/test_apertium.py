"""The Apertium translator (Debian's apertium-spa-cat, mode spa-cat_valencia) on real BOE
sentences: what comes through unchanged, structure, batching, the setup error without
Apertium, caching, and the review's cross-check of a model translation against Apertium's."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from boeflow.core.settings import Settings
from boeflow.enrich.apertium import (
    PACKAGES,
    Apertium,
    ApertiumSetupError,
    clear_located,
    deformat,
    reformat,
)
from boeflow.enrich.day import DocumentOutcome, enrichment_fields
from boeflow.enrich.schema import SummaryRecord, TranslatedSegment, TranslationRecord
from boeflow.enrich.translate import (
    ApertiumTranslator,
    TranslationJob,
    make_translator,
    review_translation_record,
)
from boeflow.review import check_language
from boeflow.review.checks import chrf, source_facts_missing
from tests.conftest import DOCUMENTS
from tests.support.cli import run_boeflow

pytestmark = pytest.mark.skipif(shutil.which("apertium") is None,
                                reason=f"needs the Debian packages {PACKAGES}")
REPO = Path(__file__).resolve().parents[2]

# Real BOE text: titles of the 2024-11-06 sumario and sentences of the sample documents.
RDL_TITLE = ("Real Decreto-ley 6/2024, de 5 de noviembre, por el que se adoptan medidas urgentes "
             "de respuesta ante los daños causados por la Depresión Aislada en Niveles Altos "
             "(DANA) en diferentes municipios entre el 28 de octubre y el 4 de noviembre de 2024.")
HABEAS = ("La ley regulará un procedimiento de «habeas corpus» para producir la inmediata puesta "
          "a disposición judicial de toda persona detenida ilegalmente.")
AMOUNTS = ("b) Un cinco por ciento por la remuneración obtenida que se encuentre entre los "
           "50.001 euros y los 500.000 euros.")
CITED = ("Corrección de errores del Real Decreto-ley 6/2024 (BOE-A-2024-22928), publicado en "
         "https://www.boe.es/eli/es/rdl/2024/11/05/6 el 6 de noviembre de 2024, según el "
         "artículo 23.2 del Reglamento (UE) 2015/848.")
COMPANY = ("Resolución de 30 de octubre de 2024, de la Secretaría de Estado de Energía, por la "
           "que se otorga a «Parque Eólico Los Llanos, S.L.» autorización administrativa; la "
           "sesión será a las 10:30 horas.")
LIST = ("- Ayudas de hasta 1.250.000,50 euros a empresas.\n"
        "- Plazo de diez días hábiles desde el 01/12/2024.\n"
        "- Orden HAC/1234/2024 y Ley 38/2003.")
RESUMEN = ("El Real Decreto-ley 6/2024 adopta medidas urgentes de respuesta ante los daños "
           "causados por la DANA entre el 28 de octubre y el 4 de noviembre de 2024. Las "
           "empresas afectadas podrán solicitar ayudas de hasta 20.000 euros en el plazo de "
           "tres meses. Los trabajadores autónomos quedan exentos de las cuotas a la Seguridad "
           "Social durante los meses de noviembre y diciembre.")


@pytest.fixture(scope="module")
def engine() -> Apertium:
    return Apertium("spa-cat_valencia")


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, translate_backend="apertium")


@pytest.fixture()
def no_apertium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PATH with Python and boeflow but no Apertium."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent)])
    assert shutil.which("apertium", path=path) is None
    monkeypatch.setenv("PATH", path)
    clear_located()
    yield path
    clear_located()


def test_facts_come_through_unchanged_in_real_valencian(engine: Apertium) -> None:
    sources = [RDL_TITLE, HABEAS, AMOUNTS, CITED, COMPANY, LIST]
    outputs = engine.translate(sources)
    for source, output in zip(sources, outputs, strict=True):
        _, missing = source_facts_missing(source, output)
        assert not missing, (output, missing)
        assert not check_language(output, "va").flagged, output
    rdl, habeas, amounts, cited, company, listed = outputs
    assert rdl.startswith("Reial decret llei 6/2024, de 5 de novembre, pel qual s'adopten "
                          "mesures urgents")
    assert "(DANA)" in rdl and "*" not in rdl  # no unknown-word mark
    assert "«habeas corpus»" in habeas and habeas.startswith("La llei regularà")
    assert "entre els 50.001 euros i els 500.000 euros" in amounts
    assert "(BOE-A-2024-22928)" in cited and "https://www.boe.es/eli/es/rdl/2024/11/05/6" in cited
    assert "l'article 23.2 del Reglament (UE) 2015/848" in cited
    # What Apertium alters on its own is kept verbatim: company names, clock times.
    assert "«Parque Eólico Los Llanos, S.L.»" in company and "10:30" in company
    assert company.startswith("Resolució de 30 d'octubre de 2024, de la Secretaria d'Estat")
    # A list keeps its items, one a line.
    assert listed.split("\n") == ["- Ajudes de fins a 1.250.000,50 euros a empreses.",
                                  "- Termini de deu dies hàbils des del 01/12/2024.",
                                  "- Ordre HAC/1234/2024 i Llei 38/2003."]
    # The Valencian forms of the mode (GVA criteria): seua, huit, -isc- verbs in -isca.
    assert engine.translate(["Su empresa tiene ocho servicios y es necesario que sirvan."]) \
        == ["La seua empresa té huit serveis i és necessari que servisquen."]


def test_paragraphs_stay_and_reserved_characters_round_trip(engine: Apertium) -> None:
    text = "Primer párrafo sin punto\n\nSegundo [anexo] con *nota*, #1, @boe, a/b y \\ fin."
    stream = deformat(text)
    assert reformat(stream) == text  # the deformatter alone loses nothing
    (output,) = engine.translate([text])
    first, second = output.split("\n\n")
    assert first == "Primer paràgraf sense punt"
    assert second.startswith("Segon [annex] amb *nota*, #1, @boe, a/b i \\ fi")


def test_one_process_per_batch_of_a_days_titles(engine: Apertium) -> None:
    titles = [line for line in (REPO / "samples" / "translation" / "pilar-dogv" / "dev_es.txt")
              .read_text(encoding="utf-8").splitlines()[:250]]
    before = engine.processes
    outputs = engine.translate(titles)
    assert engine.processes - before == 1
    assert len(outputs) == 250 and all(o.strip() for o in outputs)
    assert sum(1 for s, o in zip(titles, outputs, strict=True) if s != o) > 240


def test_the_real_rdl_text_sections_keep_their_structure(engine: Apertium) -> None:
    from boeflow.review.source import read_document

    doc = read_document(DOCUMENTS / "BOE-A-2024-22928.xml")
    texts = [s.text for s in doc.sections[:12] if s.text.strip()]
    outputs = engine.translate(texts)
    for source, output in zip(texts, outputs, strict=True):
        assert output.count("\n") == source.count("\n")
        assert output.count("«") == source.count("«")
        assert not source_facts_missing(source, output)[1], output[:200]


def test_setup_error_without_apertium_names_the_packages_once(
        settings: Settings, no_apertium: str) -> None:
    translator = ApertiumTranslator(settings)
    jobs = [TranslationJob(f"BOE-A-2024-{n}", [("titulo", RDL_TITLE)], "es", "va")
            for n in range(5)]
    with pytest.raises(ApertiumSetupError) as caught:
        translator.translate_many(jobs)
    message = str(caught.value)
    assert "apertium-spa-cat" in message and "cg3" in message and "apt-get install" in message
    # The CLI: one line, no traceback.
    env = {**os.environ, "PATH": no_apertium, "PYTHONPATH": str(REPO / "src"),
           "BOEFLOW_DATA_DIR": str(settings.data_dir)}
    done = run_boeflow(["eval", "translation", "--limit", "3"], env=env, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.count("error:") == 1 and "apertium-spa-cat" in done.stderr


def test_missing_mode_is_a_setup_error() -> None:
    with pytest.raises(ApertiumSetupError, match="spa-cat_nonexistent"):
        Apertium("spa-cat_nonexistent").translate(["Hola"])


def test_a_rerun_translates_nothing(settings: Settings) -> None:
    translator = make_translator(settings)
    assert isinstance(translator, ApertiumTranslator)
    jobs = [TranslationJob("BOE-A-2024-22928", [("titulo", RDL_TITLE), ("resumen", RESUMEN),
                                                ("puntos_clave.0", LIST)], "es", "va"),
            TranslationJob("BOE-A-2024-24097", [("titulo", CITED)], "es", "va")]
    first = translator.translate_many(jobs)
    assert translator.processes == 1
    assert all(isinstance(r, TranslationRecord) and r.status == "ok" for r in first)
    again = ApertiumTranslator(settings)
    second = again.translate_many(jobs)
    assert again.processes == 0
    assert [r.model_dump() for r in second] == [r.model_dump() for r in first]  # type: ignore[union-attr]
    record = first[0]
    assert isinstance(record, TranslationRecord)
    assert record.backend == "apertium" and not record.smoke
    assert record.review is not None and not record.review.needs_attention, record.review


def _model_record(outputs: dict[str, str], references: dict[str, str]) -> TranslationRecord:
    return TranslationRecord(
        doc_id="BOE-A-2024-22928", cache_key="k", model="BSC-LT/Aitana-2B-S", prompt_version="p",
        source_hash="h", backend="transformers", smoke=False, status="ok",
        source_language="es", target_language="va",
        segments=[TranslatedSegment(field=name, source=source, text=outputs[name],
                                    reference=references[name])
                  for name, source in (("titulo", RDL_TITLE), ("resumen", RESUMEN))])


def test_review_flags_a_wrong_model_translation_and_passes_apertiums(engine: Apertium) -> None:
    title_va, resumen_va = engine.translate([RDL_TITLE, RESUMEN])
    references = {"titulo": title_va, "resumen": resumen_va}
    good = _model_record(references, references)
    review_translation_record(good)
    assert good.review is not None and not good.review.needs_attention, good.review.reasons
    names = {c.name for c in good.review.checks}
    assert "referencia" in names

    changed = _model_record({"titulo": title_va,
                             "resumen": resumen_va.replace("20.000 euros", "30.000 euros")},
                            references)
    review_translation_record(changed)
    assert changed.review is not None and changed.review.needs_attention
    assert any("20.000 euros" in r for r in changed.review.reasons), changed.review.reasons

    sentences = resumen_va.split(". ")
    dropped = _model_record({"titulo": title_va, "resumen": sentences[0] + "."}, references)
    review_translation_record(dropped)
    assert dropped.review is not None and dropped.review.needs_attention
    reference_check = next(c for c in dropped.review.checks if c.name == "referencia")
    assert reference_check.flagged and "resumen: chrF" in reference_check.reasons[0]
    assert chrf(sentences[0] + ".", resumen_va) < 65 <= chrf(resumen_va, resumen_va)

    # The digest then shows Apertium's translation, labelled, instead of the model's.
    summary = SummaryRecord(doc_id="BOE-A-2024-22928", cache_key="s", model="m",
                            prompt_version="p", source_hash="h", backend="transformers",
                            smoke=False, status="ok", mode="short", title=RDL_TITLE)
    fields = enrichment_fields(DocumentOutcome(doc_id="BOE-A-2024-22928", summary=summary,
                                               translation=dropped))
    assert fields["title_va"] == title_va
    assert fields["enrichment"]["va_source"] == "apertium_reference"
    kept = enrichment_fields(DocumentOutcome(doc_id="BOE-A-2024-22928", summary=summary,
                                             translation=good))
    assert kept["enrichment"]["va_source"] == "model"


def test_a_model_translation_is_cross_checked_and_replaced_when_it_fails(
        smoke_settings: Settings) -> None:
    """The production path with the smoke translator (the real model code, random weights):
    Apertium translates the same fields as the reference, the random output fails the
    cross-check, and the stored fields show Apertium's translation, labelled."""
    from tests.support.generation import SMOKE_GENERATION

    settings = smoke_settings.model_copy(update={
        "translate_backend": "model",
        "translate_max_new_tokens": SMOKE_GENERATION["translate_max_new_tokens"]})
    translator = make_translator(settings)
    assert not isinstance(translator, ApertiumTranslator)
    record = translator.translate("BOE-A-2024-22928", [("titulo", RDL_TITLE),
                                                       ("resumen", RESUMEN)], "es", "va")
    assert record.reference_model and record.reference_model.startswith("apertium:")
    expected = Apertium("spa-cat_valencia").translate([RDL_TITLE, RESUMEN])
    assert [s.reference for s in record.segments] == expected
    assert record.review is not None and record.review.needs_attention
    assert any(c.name == "referencia" and c.flagged for c in record.review.checks)
    summary = SummaryRecord(doc_id="BOE-A-2024-22928", cache_key="s", model="m",
                            prompt_version="p", source_hash="h", backend="transformers",
                            smoke=True, status="ok", mode="short", title=RDL_TITLE)
    fields = enrichment_fields(DocumentOutcome(doc_id="BOE-A-2024-22928", summary=summary,
                                               translation=record))
    assert fields["title_va"] == expected[0]
    assert fields["enrichment"]["va_source"] == "apertium_reference"
