"""The BOE source: sumarios, item documents, their metadata and references."""
