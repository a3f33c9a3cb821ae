"""``boeflow models smoke|info``."""

from __future__ import annotations

from pathlib import Path

import typer

from boeflow.cli.common import err_console, print_json
from boeflow.core.settings import get_settings

app = typer.Typer(help="Build the offline smoke models; show which models are configured.",
                  no_args_is_help=True)


@app.command()
def smoke(
    out: Path | None = typer.Option(None, "--out", help="Output directory "
                                    "(default: BOEFLOW_SMOKE_MODELS_DIR)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if present."),
) -> None:
    """Build tiny XLM-RoBERTa and Llama chat models from the BOE samples, offline."""
    from boeflow.models.smoke import build_smoke_models

    settings = get_settings()
    target = out or settings.smoke_models_dir
    models = build_smoke_models(target, settings.samples_dir, force=force)
    err_console.print(f"smoke models ready in {models.root} (embedding dim {models.embedding_dim})")
    print_json({"root": str(models.root), "embedder": str(models.embedder),
                "summarizer": str(models.summarizer), "translator": str(models.translator),
                "embedding_dim": models.embedding_dim})


@app.command()
def info() -> None:
    """Show the configured models and whether they are smoke stand-ins."""
    from boeflow.models.loading import smoke_info

    settings = get_settings()
    rows = {}
    for role, ref, rev in (("embedder", settings.embed_model, settings.embed_revision),
                           ("summarizer", settings.summarizer_model, settings.summarizer_revision),
                           ("translator", settings.translator_model, settings.translator_revision)):
        rows[role] = {"model": ref, "revision": rev, "smoke": smoke_info(ref) is not None}
    print_json({"profile": settings.profile, "models": rows})
