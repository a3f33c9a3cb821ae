"""Elasticsearch layout, indexing and the stage's client."""
