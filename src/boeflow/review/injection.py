"""Text addressed to the model inside a document: prompt-injection detection.

The pipeline already treats document text as data (delimited, special tokens neutralised);
this check makes a human look at documents that try to steer the model, and at outputs that
echo such instructions. It works on a normalised copy of the text, so obfuscation does not
hide the words:

* Unicode NFKC (fullwidth and compatibility forms → plain letters), zero-width and other
  format characters removed (U+200B…, U+2060, soft hyphen, BOM), common Cyrillic/Greek
  look-alike letters mapped to Latin, accents folded, lower case;
* letters spelt out one by one ("i g n o r a", "i.g.n.o.r.a") joined, digits inside words
  read as letters ("1gn0r4").

Then, per sentence, more than keywords: cues of five kinds are counted — an override verb
("ignora", "olvida", "haz caso omiso", "pasa por alto", "disregard"), what it targets
("instrucciones", "lo anterior", "tu tarea", "system prompt"), words addressing the model
("eres un modelo", "asistente", "IA", "quien resuma este texto"), output control
("responde solo", "en lugar de resumir", "no resumas", "revela el prompt"), a role change
("a partir de ahora", "actúa como", "nuevas instrucciones") and the familiar second person
("tus", "eres", "limítate"), which the BOE never uses — and a sentence is flagged when
an override verb meets its target or when cues of two different kinds meet (besides a few
unambiguous patterns: chat-template tokens, a forged ``</documento>``). BOE prose that says
"se dictan instrucciones" or "actúa como órgano de contratación" has one kind of cue only.
The measured hit rate on the shipped set (``boeflow/evals/data/injection_set.jsonl``) is in
docs/review.md.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from boeflow.core.textnorm import fold

# Cyrillic and Greek letters that look like Latin ones.
_CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ո": "n", "ս": "u", "А": "A", "В": "B",
    "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X",
    "І": "I", "α": "a", "ε": "e", "ι": "i", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "ν": "v",
    "κ": "k", "Α": "A", "Ε": "E", "Ι": "I", "Ο": "O", "Ρ": "P", "Τ": "T",
})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s"})
_SPELLED = re.compile(r"\b(?:[a-zñç][ .\-_*·]){3,}[a-zñç]\b")
_MIXED_WORD = re.compile(r"\b(?=\w*[a-z])(?=\w*[0-9@$])[\w@$]{3,}\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def normalise(text: str) -> str:
    """The detection copy of ``text`` (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")  # zero-width etc.
    text = fold(text.translate(_CONFUSABLES))
    text = _SPELLED.sub(lambda m: re.sub(r"[ .\-_*·]", "", m.group(0)), text)
    text = _MIXED_WORD.sub(lambda m: m.group(0).translate(_LEET), text)
    return re.sub(r"[ \t]+", " ", text)


def _alt(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b")


# Always injections: chat-template markup and forged delimiters.
MARKUP = re.compile(r"<\|?im_(?:start|end)\|?>|<\|[a-z_]{3,30}\|>|\[/?inst\]|<</?sys>>|"
                    r"</?documento\b|</?notas\b")

OVERRIDE = _alt(
    r"ignor(?:a|ad|e|en|es|eu|ar|ando)", r"olvid(?:a|ad|e|en|ar|ate)", r"oblid(?:a|eu|ar)",
    r"forget", r"disregard", r"overrid(?:e|es)", r"desatiend(?:e|an)", r"haz caso omiso",
    r"hagas caso omiso", r"fes cas omis",
    r"pasa por alto", r"pasad por alto", r"passa per alt", r"deja de lado", r"dejad de lado",
    r"no (?:hagas|tengas en cuenta|sigas|obedezcas|cumplas|respetes)",
    r"no (?:facis|tingues en compte|seguisques|segueixis)",
    r"(?:do not|don't) (?:follow|obey)", r"skip", r"sobrescribe", r"saltate")
TARGET = _alt(
    r"(?:las |les |the |tus |tes |your |todas las |totes les )?(?:instrucciones|instruccions|"
    r"instrucci[oó]n|instructions?|indicaciones|indicacions|ordenes|ordres|reglas|regles|"
    r"directrices|directrius|consignas|consignes|normas previas|guidelines|rules)",
    r"(?:todo )?lo (?:anterior|dicho|que te (?:han|hayan) dicho)", r"tot (?:l'|el )?anterior",
    r"(?:the |everything )?above", r"previous", r"prior", r"tu (?:tarea|mision|rol|papel)",
    r"la teua tasca", r"your (?:task|role|prompt)", r"(?:system )?prompt",
    r"mensaje del sistema", r"system message", r"(?:el )?contexto anterior")
ADDRESS = _alt(
    r"(?:eres|ets|you are|sou) (?:un |una |a |an )?(?:modelo|model|asistente|assistent|"
    r"assistant|ia|ai|chatbot|llm|bot)", r"modelo de lenguaje", r"model de llenguatge",
    r"language model", r"asistente virtual", r"inteligencia artificial",
    r"intel·ligencia artificial", r"artificial intelligence", r"ia", r"ai", r"llm",
    r"chatgpt", r"gpt",
    r"(?:al|el) (?:modelo|sistema|asistente) que (?:procese|lea|resuma|analice)",
    r"quien (?:resuma|procese|lea|analice) este (?:texto|documento|boletin)",
    r"si eres (?:un |una )?(?:ia|modelo|asistente|robot)", r"dear (?:ai|assistant|model)",
    r"querid[oa] (?:ia|modelo|asistente)", r"(?:resumidor|summari[sz]er)")
OUTPUT = _alt(
    r"(?:responde|contesta|escribe|devuelve|genera|produce|redacta|di|respon|escriu|retorna|"
    r"reply|respond|write|output|say|answer) (?:solo|solamente|unicamente|only|nomes|just)",
    r"(?:en lugar de|en vez de|instead of|en comptes de|en lloc de) (?:resumir|summari[sz]ing|"
    r"hacer el resumen|fer el resum)", r"no (?:resumas|resumais|resumeixes|resumisques)",
    r"(?:do not|don't) summari[sz]e",
    r"(?:revela|muestra|imprime|reveal|print|show|mostra) (?:tu |tus |el |your |the |les )?"
    r"(?:prompt|instrucciones|instructions|system|instruccions)",
    r"(?:escribe|write|escriu|redacta) (?:un |a )?(?:poema|poem|cancion|song|chiste|joke)",
    r"(?:la |the )?(?:contrasena|password|api key|clave secreta)",
    r"(?:resumen|summary|resum) (?:debe|must|ha de) (?:decir|say|dir)",
    r"marca (?:este|el) (?:documento|texto) como", r"(?:califica|clasifica) (?:este|el) "
    r"documento como", r"no (?:lo )?marques", r"sin (?:revision|incidencias)")
ROLE = _alt(
    r"a partir de (?:ahora|este momento)", r"desde (?:ahora|este momento)", r"from now on",
    r"d'ara (?:en )?(?:avant|endavant)", r"(?:nueva|nuevas|nova|noves|new) instrucci\w*",
    r"actua (?:como|com) (?:un |una )?(?:pirata|experto|hacker|asistente|modelo|ia|"
    r"traductor|poeta|otro)", r"act as", r"pretend (?:to be|you are)", r"finge (?:que eres|ser)",
    r"(?:modo|mode) (?:desarrollador|developer|dios|god)", r"jailbreak", r"tu nuevo rol",
    r"your new role", r"olvida quien eres", r"role ?play")

# The BOE never speaks to its reader in the familiar second person ("tú").
SECOND_PERSON = _alt(r"tus", r"eres", r"te (?:han|hayan|dieron|pido|ordeno)", r"limitate",
                     r"asegurate", r"tu (?:tarea|mision|rol|papel|respuesta|resumen|trabajo)",
                     r"ets", r"les teues", r"you(?:r)?")

CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("override", OVERRIDE), ("target", TARGET), ("address", ADDRESS), ("output", OUTPUT),
    ("role", ROLE), ("second_person", SECOND_PERSON))
NEAR_WORDS = 8  # an override verb and its target within this many words


@dataclass(frozen=True)
class Finding:
    text: str  # the sentence as written (shortened)
    cues: tuple[str, ...]


def _near(sentence: str, first: re.Pattern[str], second: re.Pattern[str]) -> bool:
    for a in first.finditer(sentence):
        for b in second.finditer(sentence):
            gap = sentence[a.end():b.start()] if b.start() >= a.end() else \
                sentence[b.end():a.start()]
            if len(gap.split()) <= NEAR_WORDS:
                return True
    return False


def _sentence_findings(original: str) -> Finding | None:
    sentence = normalise(original)
    if MARKUP.search(sentence):
        return Finding(original.strip()[:120], ("markup",))
    kinds = tuple(name for name, pattern in CUES if pattern.search(sentence))
    if "override" in kinds and "target" in kinds and _near(sentence, OVERRIDE, TARGET):
        return Finding(original.strip()[:120], kinds)
    strong = set(kinds) - {"target"}  # a target alone ("instrucciones") is ordinary BOE prose
    if len(strong) >= 2:
        return Finding(original.strip()[:120], kinds)
    return None


def find_injection_sentences(text: str) -> list[Finding]:
    """Sentences of ``text`` that address the model (see the module docstring)."""
    findings: list[Finding] = []
    # Markup can straddle sentence boundaries: check it on the whole text first.
    whole = normalise(text)
    if MARKUP.search(whole):
        match = MARKUP.search(whole)
        findings.append(Finding(match.group(0) if match else "", ("markup",)))
    for sentence in _SENTENCE.split(text):
        if not sentence.strip():
            continue
        found = _sentence_findings(sentence)
        if found is not None and found.cues != ("markup",):
            findings.append(found)
    return findings
