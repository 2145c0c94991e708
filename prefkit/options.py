"""Shared CLI options, defined once as dataclasses and injected into commands.

A config dataclass drives both the Python API and the CLI (the TRL pattern):
every field becomes a ``--flag`` with the field's default, and the decorated
command receives one ready-made dataclass instance::

    @dataclass
    class MyOptions:
        max_tokens: int = opt(200, help="Most tokens to generate.")

    @app.command()
    @with_options(MyOptions, "opts")
    def cmd(split: str, opts: MyOptions): ...

Field metadata (``opt(...)``): ``help``, ``flag`` (override the flag name),
``short`` (e.g. ``-n``), ``hidden``, ``parser`` (convert the CLI string),
``cli_type`` (the type typer sees, default: the field's type). A field without a
default is a required option (declare the dataclass ``kw_only=True`` to put such
fields after ones with defaults).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from typing import Any, Callable

from .errors import PrefkitError, UsageError

_MISSING = dataclasses.MISSING


def opt(default: Any = _MISSING, *, help: str = "", flag: str | None = None, short: str | None = None,
        hidden: bool = False, default_factory: Callable[[], Any] | None = None, cli_type: Any = None,
        parser: Callable[[Any], Any] | None = None, cli: bool = True) -> Any:
    """A dataclass field that is also a CLI option."""
    metadata = {"help": help, "flag": flag, "short": short, "hidden": hidden, "cli_type": cli_type,
                "parser": parser, "cli": cli}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _flag_for(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _cli_type(f: dataclasses.Field, hints: dict[str, Any]) -> Any:
    t = f.metadata.get("cli_type") or hints.get(f.name, str)
    return t


def option_params(cls: type, prefix: str = "") -> list[inspect.Parameter]:
    """Typer parameters for every CLI field of a dataclass (built once per class: start-up time matters)."""
    return list(_option_params(cls, prefix))


@functools.lru_cache(maxsize=None)
def _option_params(cls: type, prefix: str) -> tuple[inspect.Parameter, ...]:
    import typer

    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        if f.default is _MISSING and f.default_factory is _MISSING:  # type: ignore[misc]
            default = ...  # no default: a required option
        else:
            default = f.default if f.default is not _MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, (list, tuple, dict)):  # the dataclass default applies when the flag is absent
            default = None
        # a prefix renames the flag too (two option groups on one command must not both claim --model)
        names = [_flag_for(f) if not prefix else "--" + (prefix + f.name).replace("_", "-")]
        t = _cli_type(f, hints)
        if t is bool or t == "bool":
            base = names[0][2:]
            names = [f"--{base}/--no-{base}"]
        if f.metadata.get("short") and not prefix:
            names.append(f.metadata["short"])
        flag = t is bool or t == "bool"
        option = typer.Option(default, *names, help=f.metadata.get("help") or None,
                              hidden=f.metadata.get("hidden", False), show_default=True,
                              **({"metavar": ""} if flag else {}))  # a flag takes no value: no "<bool>" in help
        params.append(
            inspect.Parameter(prefix + f.name, inspect.Parameter.KEYWORD_ONLY,
                              default=option, annotation=t)
        )
    return tuple(params)


def build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate ``cls`` from CLI values (applying field parsers)."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        key = prefix + f.name
        if key not in values:
            continue
        v = values[key]
        if v is None and (f.default is not _MISSING or f.default_factory is not _MISSING):
            continue  # flag not given: the dataclass default applies
        parser = f.metadata.get("parser")
        if parser is not None and v is not None:
            try:
                v = parser(v)
            except (ValueError, TypeError, PrefkitError) as exc:  # a parser rejecting the value: name the flag
                raise UsageError(f"{_flag_for(f)}: {exc}") from None
        kwargs[f.name] = v
    return cls(**kwargs)


def with_options(cls: type, param: str, prefix: str = "") -> Callable[[Callable], Callable]:
    """Decorator: expose ``cls``'s fields as options; pass an instance as ``param``."""
    return inject_params(param, option_params(cls, prefix), lambda values: build(cls, values, prefix))


def inject_params(param: str, extra: list[inspect.Parameter],
                  make: Callable[[dict[str, Any]], Any]) -> Callable[[Callable], Callable]:
    """Decorator: add the typer parameters ``extra`` to a command; ``make(values)`` becomes its ``param`` argument."""

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        extra_names = {p.name for p in extra}

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            values = {k: kwargs.pop(k) for k in list(kwargs) if k in extra_names}
            kwargs[param] = make(values)
            return fn(*args, **kwargs)

        try:  # resolve string annotations in the command's own module (typer reads them from the wrapper)
            hints = typing.get_type_hints(fn)
        except Exception:
            hints = {}
        params = [p.replace(annotation=hints.get(p.name, p.annotation))
                  for p in sig.parameters.values() if p.name != param]
        # keyword-only options go after the command's own parameters
        positional = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
        kwonly = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
        new_params = positional + kwonly + extra
        wrapper.__signature__ = sig.replace(parameters=new_params, return_annotation=hints.get("return", sig.return_annotation))  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in new_params}
        del wrapper.__wrapped__  # typer must read __signature__, not the original
        return wrapper

    return decorate


def check_limit(value: int | None, flag: str = "--limit") -> int | None:
    """The one ``--limit`` rule: None (no limit) or at least 1; 0 or a negative number is bad input."""
    if value is not None and int(value) < 1:  # rows[:0] or rows[:-1] would silently drop data
        raise UsageError(f"{flag} must be at least 1 (got {value})")
    return None if value is None else int(value)


def split_csv(value: str | list[str] | None) -> list[str]:
    """Parse ``a,b,c`` (or a repeated option) into a list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            out.extend(split_csv(v))
        return out
    return [v.strip() for v in str(value).split(",") if v.strip()]


@dataclasses.dataclass
class RunOptions:
    """Where a command writes its run directory."""

    output_dir: str | None = opt(None, help="Run directory (default: ./runs/<command>/<run-name>).", short="-o")
    run_name: str | None = opt(None, help="Run name under ./runs/<command>/ (default: derived from the settings, so re-running resumes).")
    fresh: bool = opt(False, help="Start over: discard existing results in the run directory instead of resuming.")
