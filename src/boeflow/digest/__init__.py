"""The reviewed daily digest (issue 10): model, builder, renderings, publication."""
