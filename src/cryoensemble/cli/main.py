"""The ``cryoensemble`` command. Each sub-command lives in its own module of this package."""

from __future__ import annotations

import importlib

import typer

from cryoensemble.parallel import configure_host_devices

# Every CPU core becomes a JAX device (particles are split over them); this must happen before
# JAX starts, and no command module imports JAX at import time.
configure_host_devices()

app = typer.Typer(
    name="cryoensemble",
    help="Cryo-EM image simulation and ensemble inference from particle images (JAX).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, function, command name); a module that is absent is skipped so the CLI stays usable.
_COMMANDS = [
    ("simulate", "simulate", "simulate"),
    ("render", "render", "render"),
    ("reweight", "reweight", "reweight"),
    ("optimize", "optimize", "optimize"),
    ("poses", "poses", "poses"),
    ("demo", "demo", "demo"),
]

for _module, _func, _name in _COMMANDS:
    try:
        _mod = importlib.import_module(f"cryoensemble.cli.{_module}")
    except ModuleNotFoundError as _err:
        if _err.name != f"cryoensemble.cli.{_module}":
            raise
        continue
    app.command(_name)(getattr(_mod, _func))


if __name__ == "__main__":
    app()
