"""Command-line options derived from a workflow's pydantic configuration, so that a command does
not restate its configuration's fields by hand.

Each field ``name`` becomes the option ``--name-with-dashes`` whose help is the field's
description (plus its default); lists become repeatable options; a bool becomes a flag that
changes the default (``--x`` for a field off by default, ``--no-x`` for one on by default).
Every derived option defaults to None, meaning "not given", so that a configuration file and the
model's defaults fill in what the command line leaves out. The values go through the
configuration's validation; :class:`OptionValues` also carries each field's flag so that messages
name both.

The configuration class is imported only when typer builds the command (``--help`` or a run), so
``import cryoensemble.cli.main`` stays free of JAX::

    @user_errors
    @config_command("cryoensemble.workflows.simulate:SimulateConfig", specs={...})
    def simulate(given: OptionValues, out: Annotated[Path, typer.Option()], ...) -> None:
        config = load_config(labels=given.labels, **given.values)
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal

import typer

__all__ = ["OptionSpec", "OptionValues", "config_command", "option_name"]


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """How one field appears on the command line; anything left unset is derived.

    Arguments:
        names: the option's declarations (e.g. ``("--structure", "-s")``).
        help: the help text (default: the field's description).
        type: the type typer parses (e.g. ``list[str]`` for values the configuration splits).
    """

    names: tuple[str, ...] = ()
    help: str | None = None
    type: Any = None


@dataclasses.dataclass(frozen=True)
class OptionValues:
    """What a command line gave for a configuration's fields.

    Arguments:
        values: field name -> value, for the options given only.
        labels: field name -> "field (--flag)", for validation messages.
    """

    values: dict[str, Any]
    labels: dict[str, str]


def option_name(field: str) -> str:
    """The option of a field: ``n_particles`` -> ``--n-particles``.

    Arguments:
        field: the configuration field's name.
    """
    return "--" + field.replace("_", "-")


def _is_flag(annotation: Any) -> bool:
    return annotation is bool


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _cli_type(annotation: Any) -> Any:
    """The type typer parses: Literal choices as str (the configuration checks them)."""
    base = _strip_optional(annotation)
    if typing.get_origin(base) is Literal:
        return str
    if typing.get_origin(base) is list:
        return list[_cli_type(typing.get_args(base)[0])]
    return base


def _names(name: str, field, spec: OptionSpec) -> tuple[str, ...]:
    if spec.names:
        return spec.names
    if _is_flag(field.annotation) and field.default is True:
        return ("--no-" + name.replace("_", "-"),)
    return (option_name(name),)


def _help(field, spec: OptionSpec) -> str:
    if spec.help is not None:
        return spec.help
    text = field.description or ""
    base = _strip_optional(field.annotation)
    if typing.get_origin(base) is Literal:
        text += " One of: " + ", ".join(map(str, typing.get_args(base))) + "."
    if _is_flag(field.annotation):
        return text + (" (On by default; this flag turns it off.)" if field.default else "")
    if field.is_required() or field.default is None or field.default_factory is not None:
        return text
    return f"{text} (default {field.default})"  # rich would read "[default: x]" as markup


def _parameter(name: str, field, spec: OptionSpec) -> inspect.Parameter:
    option = typer.Option(*_names(name, field, spec), help=_help(field, spec))
    if _is_flag(field.annotation):
        annotation: Any = bool | None
    else:
        annotation = spec.type or _cli_type(field.annotation)
        annotation = annotation if field.is_required() else annotation | None
    default = inspect.Parameter.empty if field.is_required() else None
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[annotation, option],
    )


def _value(field, raw: Any) -> Any:
    """The field value of an option's raw value (None: not given)."""
    if raw is None or (isinstance(raw, (list, tuple)) and not raw):
        return None
    if _is_flag(field.annotation):
        return (not field.default) if raw else None
    return list(raw) if isinstance(raw, tuple) else raw


class _ConfigCommand:
    """A command function whose signature is derived from a configuration class on first use."""

    def __init__(self, model: str, body: Callable, exclude: Iterable[str], specs) -> None:
        self.model, self.body = model, body
        self.exclude, self.specs = frozenset(exclude), dict(specs)
        self.__name__, self.__qualname__ = body.__name__, body.__qualname__
        self.__module__, self.__doc__ = body.__module__, body.__doc__
        self.__annotations__: dict[str, Any] = {}

    @functools.cached_property
    def fields(self) -> dict[str, Any]:
        module, _, name = self.model.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return {n: f for n, f in cls.model_fields.items() if n not in self.exclude}

    @functools.cached_property
    def labels(self) -> dict[str, str]:
        spec = lambda n: self.specs.get(n, OptionSpec())  # noqa: E731
        return {n: f"{n} ({_names(n, f, spec(n))[0]})" for n, f in self.fields.items()}

    @functools.cached_property
    def __signature__(self) -> inspect.Signature:
        derived = [
            _parameter(n, f, self.specs.get(n, OptionSpec())) for n, f in self.fields.items()
        ]
        extra = list(inspect.signature(self.body, eval_str=True).parameters.values())[1:]
        extra = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in extra]
        return inspect.Signature(derived + extra)

    def __call__(self, **kwargs: Any) -> Any:
        values = {n: _value(f, kwargs.pop(n, None)) for n, f in self.fields.items()}
        given = OptionValues({k: v for k, v in values.items() if v is not None}, self.labels)
        return self.body(given, **kwargs)


def config_command(
    model: str,
    *,
    exclude: Iterable[str] = (),
    specs: Mapping[str, OptionSpec] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorate a command ``body(given: OptionValues, **extra)`` with options for ``model``'s
    fields, followed by the body's own (``extra``) options.

    Arguments:
        model: the configuration class as ``"package.module:ClassName"`` (imported when typer
            builds the command, so that importing the command line stays light).
        exclude: fields without an option (set by the body's own options, or not at all).
        specs: per-field :class:`OptionSpec` (other names, help or parsed type).
    """

    def decorate(body: Callable) -> Callable:
        return _ConfigCommand(model, body, exclude, specs or {})

    return decorate
