"""Shared command-line plumbing: user errors become one line and an exit status."""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer

from cryoensemble.errors import CryoEnsembleError


def user_errors(fn: Callable) -> Callable:
    """Turn :class:`CryoEnsembleError` into a one-line message and exit status 1 (no traceback).

    Ctrl-C exits with status 130 after the output-folder context managers have cleaned up.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CryoEnsembleError as err:
            typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.secho("interrupted: no output was written", err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(130) from None

    return wrapper
