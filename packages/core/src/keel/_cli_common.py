"""What every ``keel`` command shares: one-line errors with exit code 2, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from keel.errors import KeelError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_BAD_INPUT = 2


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with code 2."""
    # Plain text, never wrapped: the file:line stays on one line for editors and grep.
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code=EXIT_BAD_INPUT)


def clear_errors(command: F) -> F:
    """Turn Keel errors into one ``error: ...`` line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeelError as exc:
            fail(str(exc))
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            fail(f"{exc.filename}: {exc.strerror}")

    return wrapper  # type: ignore[return-value]


def print_json(data: Any, default: Callable[[Any], Any] = str) -> None:
    """Write ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=default) + "\n")
    sys.stdout.flush()
