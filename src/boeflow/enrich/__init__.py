"""Summaries (ALIA) and Spanish↔Valencian translations (Aitana) of BOE documents.

* ``source``: a document as ordered sections (via ``boeflow.parse`` when available).
* ``prompts``: versioned Spanish prompts; document text is passed as delimited data.
* ``backends``: in-process transformers (batched) or an OpenAI-compatible HTTP server.
* ``summarize``: one pass for short notices, map-reduce within the token budget otherwise;
  validated JSON (``schema.Summary``) with bounded repair, else failed with the raw text.
* ``translate``: es→va of title, summary and key points, va→es of source texts, with ids,
  numbers and citations protected by placeholders.
* ``cache``: JSON records keyed by model, revision, prompt version and source hash.

Every output carries the automatic review (``boeflow.review``) and a smoke label when a
smoke model made it.
"""
