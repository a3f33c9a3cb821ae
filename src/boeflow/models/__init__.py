"""Model loading (production ids or local directories) and the offline smoke models."""
