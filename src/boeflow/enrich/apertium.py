"""Apertium (rule-based Spanish↔Valencian, Debian's ``apertium-spa-cat``) as a translator.

One ``apertium`` process translates a whole batch of texts: the texts are written in
Apertium's stream format (what ``apertium-destxt`` makes of plain text) separated by a
superblank that every stage of the pipeline passes through untouched, and the output is
split at those superblanks and turned back into plain text (what ``apertium-retxt`` does).
Line breaks are superblanks too, so paragraphs and lists keep their structure, and unknown
words come out without Apertium's ``*``/``@``/``#`` marks (``-u`` and the reformatter).

What Apertium does to the facts of a BOE text (checked on real titles and summaries, see
``tests/unit/test_apertium.py``): BOE ids, ELI/URLs, e-mail addresses, amounts
("1.250.000,50 euros"), numeric and written dates, citation numbers ("6/2024",
"APA/392/2020") and article numbers come through unchanged; kinds of norm are translated
("Real Decreto-ley" → "Reial decret llei", "Orden" → "Orde"). It breaks two things, which
are therefore kept verbatim as superblanks: clock times ("10:00" → "10.00") and company
names ("Hermanos García, S.L." → "Germans García, S.L."). «Quoted official names» (names of
plans, programmes, aid lines) are translated, as the DOGV's own Valencian versions do; the
guillemets are kept.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from boeflow.models.loading import ModelSetupError

log = logging.getLogger(__name__)

PACKAGES = "apertium apertium-spa-cat cg3 apertium-lex-tools"
# Bump when the (de)formatting or the protected spans change: part of every cache key.
PROTECTION_VERSION = "apertium-protect-1"
_SEPARATOR = "\u241e"  # SYMBOL FOR RECORD SEPARATOR, inside a superblank between texts
_SEPARATOR_BLANK = f"[{_SEPARATOR}]"
# Escaped in the stream as apertium-destxt does.
_ESCAPE = set("\\[]^$/<>{}")
# Apertium's marks on words (unknown *, untranslated @, not generated #): in the source they
# are kept in superblanks, so any in the output is a mark and is dropped.
_MARKS = set("*#@~")
_SENTENCE_END = set(".!?…:;")

# Spans Apertium would alter, kept verbatim.
_TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")
_COMPANY_WORD = r"[A-ZÁÉÍÓÚÑÜ][\wÁÉÍÓÚÑÜáéíóúñü'’&.-]*"
_COMPANY = re.compile(
    rf"(?:{_COMPANY_WORD}\s+(?:(?:de|del|la|las|los|el|y|e|i)\s+)?){{0,6}}{_COMPANY_WORD},?\s+"
    r"(?:S\.\s?A\.(?:\s?U\.)?|S\.\s?L\.(?:\s?[UP]\.)?|S\.\s?Coop\.(?:\s?V\.)?|C\.\s?B\.|"
    r"S\.\s?C\.|S\.\s?A\.\s?T\.|SLU\b|SAU\b|SL\b|SA\b)")
_PROTECTED = (_TIME, _COMPANY)


class ApertiumSetupError(ModelSetupError):
    """Apertium or the wanted mode is not installed: one line naming the packages."""


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Non-overlapping spans of ``text`` that are passed to Apertium as superblanks."""
    spans = sorted(m.span() for p in _PROTECTED for m in p.finditer(text))
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _escape(text: str) -> str:
    return "".join(f"\\{ch}" if ch in _ESCAPE else ch for ch in text)


def _superblank(text: str) -> str:
    return "[" + "".join(f"\\{ch}" if ch in "\\[]" else ch for ch in text) + "]"


def deformat(text: str) -> str:
    """Plain text → Apertium stream: reserved characters escaped, line breaks and protected
    spans in superblanks, a removable period (``.[]``) where a paragraph or the text ends
    without one (it helps the tagger, as apertium-destxt does)."""
    text = text.replace(_SEPARATOR, " ")
    out: list[str] = []
    cursor = 0
    for start, end in protected_spans(text):
        out.append(_deformat_plain(text[cursor:start], final=False))
        out.append(_superblank(text[start:end]))
        cursor = end
    out.append(_deformat_plain(text[cursor:], final=True))
    return "".join(out)


def _deformat_plain(text: str, final: bool) -> str:
    out: list[str] = []
    for part in re.split(r"(\n+)", text):
        if not part:
            continue
        if part.startswith("\n"):
            if len(part) > 1 and out and out[-1] and out[-1][-1] not in _SENTENCE_END \
                    and not out[-1].endswith("]"):
                out.append(".[]")
            out.append(_superblank(part))
        else:
            out.append(re.sub(r"[*#@~]+", lambda m: _superblank(m.group(0)), _escape(part)))
    if final:
        tail = text.rstrip()
        if tail and tail[-1] not in _SENTENCE_END:
            out.append(".[]")
    return "".join(out)


def reformat(stream: str) -> str:
    """Apertium stream → plain text: superblanks opened, escapes undone, the periods
    ``deformat`` added removed, unknown-word marks (``*``, ``@``, ``#``) dropped."""
    out: list[str] = []
    i = 0
    n = len(stream)
    while i < n:
        ch = stream[i]
        if ch == "\\" and i + 1 < n:
            out.append(stream[i + 1])
            i += 2
        elif ch == "[":
            j = i + 1
            content: list[str] = []
            while j < n and stream[j] != "]":
                if stream[j] == "\\" and j + 1 < n:
                    content.append(stream[j + 1])
                    j += 2
                else:
                    content.append(stream[j])
                    j += 1
            if not content and out and out[-1] == ".":
                out.pop()  # the period deformat added
            out.append("".join(content))
            i = j + 1
        elif ch in _MARKS:
            i += 1  # a mark on an unknown or untranslatable word
        else:
            if ch != "\uffff":  # what lt-proc may leave at the end of its input
                out.append(ch)
            i += 1
    return "".join(out)


def split_stream(stream: str) -> list[str]:
    """The output of a batch, split at the separator superblanks (never at an escaped one)."""
    parts: list[str] = []
    start = 0
    i = 0
    while i < len(stream):
        if stream[i] == "\\":
            i += 2
            continue
        if stream.startswith(_SEPARATOR_BLANK, i):
            parts.append(stream[start:i])
            i += len(_SEPARATOR_BLANK)
            start = i
            continue
        i += 1
    parts.append(stream[start:])
    return parts


@lru_cache(maxsize=8)
def _locate(binary: str, mode: str) -> tuple[str, str]:
    """(path of ``apertium``, revision of ``mode``) or an ``ApertiumSetupError``."""
    path = shutil.which(binary)
    if path is None:
        raise ApertiumSetupError(
            f"Apertium is not installed ('{binary}' is not on PATH): the Apertium translator "
            f"(BOEFLOW_TRANSLATE_BACKEND=apertium, and the reference translation of the "
            f"production profile) needs the Debian packages {PACKAGES} "
            f"(apt-get install -y {PACKAGES}; scripts/bootstrap.sh installs them)")
    mode_file = Path(path).resolve().parent.parent / "share" / "apertium" / "modes" / \
        f"{mode}.mode"
    if not mode_file.is_file():
        listed = subprocess.run([path, "-l"], capture_output=True, text=True, timeout=30,
                                check=False).stdout.split()
        if mode not in listed:
            raise ApertiumSetupError(
                f"the Apertium mode {mode!r} is not installed (available: "
                f"{', '.join(listed) or 'none'}): install the Debian package "
                f"apertium-spa-cat (apt-get install -y {PACKAGES}) or set "
                "BOEFLOW_TRANSLATE_APERTIUM_MODE")
        return path, mode
    text = mode_file.read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode("utf-8"))
    for data in sorted(set(re.findall(r"'(/[^']+)'", text))):
        file = Path(data)
        if file.is_file():
            stat = file.stat()
            digest.update(f"{data}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return path, f"{mode}@{digest.hexdigest()[:12]}"


class Apertium:
    """One Apertium translation direction (``mode``, e.g. ``spa-cat_valencia``)."""

    def __init__(self, mode: str, binary: str = "apertium", timeout: float = 600.0) -> None:
        self.mode = mode
        self.binary = binary
        self.timeout = timeout
        self.processes = 0  # apertium processes started (one per batch)
        self._lock = threading.Lock()

    @property
    def revision(self) -> str:
        """Mode and a fingerprint of its data files; raises the setup error when missing."""
        return _locate(self.binary, self.mode)[1]

    def check(self) -> None:
        _locate(self.binary, self.mode)

    def translate(self, texts: Sequence[str]) -> list[str]:
        """The translations of ``texts``, in order, by one ``apertium`` process."""
        wanted = [i for i, t in enumerate(texts) if t.strip()]
        results = list(texts)
        if not wanted:
            return results
        path = _locate(self.binary, self.mode)[0]
        # A closing superblank: without one the last word of the stream is cut short.
        stream = _SEPARATOR_BLANK.join(deformat(texts[i]) for i in wanted) + "[\n]"
        started = time.perf_counter()
        with self._lock:
            self.processes += 1
        try:
            done = subprocess.run([path, "-f", "none", "-u", self.mode], input=stream,
                                  capture_output=True, text=True, encoding="utf-8",
                                  timeout=self.timeout, check=False)
        except FileNotFoundError as exc:  # removed since it was located
            _locate.cache_clear()
            raise ApertiumSetupError(f"cannot run Apertium ({exc}): install {PACKAGES}") \
                from exc
        if done.returncode != 0:
            raise RuntimeError(f"apertium {self.mode} failed ({done.returncode}): "
                               f"{done.stderr.strip()[:300]}")
        parts = split_stream(done.stdout)
        if len(parts) != len(wanted):
            raise RuntimeError(f"apertium returned {len(parts)} texts for {len(wanted)}")
        for i, part in zip(wanted, parts, strict=True):
            source = texts[i]
            lead = source[:len(source) - len(source.lstrip())]
            trail = source[len(source.rstrip()):]
            results[i] = lead + reformat(part).strip() + trail
        log.debug("apertium %s: %d texts, %d characters in %.2fs", self.mode, len(wanted),
                  len(stream), time.perf_counter() - started)
        return results


_ENGINES: dict[tuple[str, str], Apertium] = {}
_ENGINES_LOCK = threading.Lock()


def get_apertium(mode: str, binary: str = "apertium") -> Apertium:
    """The process's engine for ``mode`` (it holds no process between batches)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get((binary, mode))
        if engine is None:
            engine = _ENGINES[(binary, mode)] = Apertium(mode, binary)
        return engine


def clear_located() -> None:
    """Forget where Apertium was found (tests that change PATH)."""
    _locate.cache_clear()
