"""``keel`` command line: train | eval | tune | compress | export | index | models.

Each command group lives in its own private module and registers itself on ``app``.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="keel",
    help="Fine-tune, compress and serve small transformer models on a CPU.",
    no_args_is_help=True,
    add_completion=False,
)

# Modules that each add their commands to ``app`` through ``register(app)``.
_COMMAND_MODULES = ("keel._cli_training", "keel._cli_serving", "keel._cli_models")


def _register_commands() -> None:
    for name in _COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(app)


def main() -> None:
    """Entry point of the ``keel`` console script."""
    _register_commands()
    app()
