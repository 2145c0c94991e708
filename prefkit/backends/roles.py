"""A model per role: ``--<role>-model BACKEND:MODEL`` for commands whose work has several LLM roles.

A multi-role command (a user simulator, a responder and a judge, each possibly
a different provider and model) declares its roles once::

    from prefkit import RoleDecl, Roles, with_roles

    @app.command("chat")
    @with_roles([RoleDecl("user", default="gpt-4o-mini"), RoleDecl("responder", repeatable=True),
                 RoleDecl("judge", default="anthropic:claude-sonnet-4-5")], "roles", default_backend="openai")
    def chat(..., roles: Roles): ...

and gets, for every role, ``--<role>-model``, ``--<role>-base-url``,
``--<role>-temperature`` and ``--<role>-max-tokens``, plus the engine options
once (``--backend`` = the backend of bare model names, ``--concurrency``,
``--rpm``, ``--tpm``, ``--no-cache``, ``--max-cost``, ``--dry-run``, ``--timeout``
...), shared by every role. The command receives one :class:`Roles` object.

A spec is ``BACKEND:MODEL`` (``openai:gpt-4o-mini``, ``anthropic:claude-sonnet-4-5``,
``hf:HuggingFaceTB/SmolLM2-135M-Instruct``, ``mock:judge``) or a bare model name
(the command's default backend). A prefix that is not a backend name is part of
the model name (``llama3:8b`` is a model). The providers' own environment
variables (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``, ``CO_API_URL``) are the
default base URLs; API keys resolve per provider as everywhere else
(``prefkit keys``). ``stop`` and ``seed`` (and provider ``extra`` options) can be
set per role in Python: ``RoleSpec("judge", "openai", "gpt-4o", seed=1, stop=["\\n\\n"])``.

A repeatable role (``RoleDecl("responder", repeatable=True)``) takes the flag
several times; its roles are named ``responder.0``, ``responder.1`` ...
(``roles.names("responder")``); a per-role flag given once applies to all of them.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..errors import UsageError
from .options import BackendOptions

# the provider SDKs' own variables for a server URL: prefkit reads them as the default base URL
BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL", "cohere": "CO_API_URL"}
# BackendOptions fields that belong to a role (per-role flags or spec fields), not to the shared engine
ROLE_FIELDS = ("backend", "model", "base_url", "temperature", "max_tokens", "stop", "seed")
ROLE_FLAGS = ("base_url", "temperature", "max_tokens")


def _backend_name(name: str) -> str | None:
    """The canonical name of a registered backend (aliases resolved), or None."""
    from ..plugins import registry

    reg = registry("backends")
    if name not in reg:
        return None
    return reg.entry(name).name


def parse_model_spec(spec: str) -> tuple[str | None, str | None]:
    """``"openai:gpt-4o"`` -> ``("openai", "gpt-4o")``; ``"gpt-4o"`` -> ``(None, "gpt-4o")``; ``"openai:"`` -> ``("openai", None)``."""
    spec = str(spec).strip()
    if not spec:
        raise UsageError("empty model spec; expected BACKEND:MODEL or a model name")
    head, sep, rest = spec.partition(":")
    if sep and head and "/" not in head:
        backend = _backend_name(head)
        if backend is not None:
            return backend, (rest.strip() or None)
    return None, spec


@dataclass
class RoleSpec:
    """The model one role uses: backend, model and its own generation settings.

    Unset fields (None) fall back to the command's engine options and the
    backend's defaults. ``backend`` None means the command's default backend.
    """

    role: str = ""
    backend: str | None = None
    model: str | None = None
    base_url: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str | None, role: str = "", **fields: Any) -> "RoleSpec":
        """A spec from ``BACKEND:MODEL`` / a bare model name (None: the backend's default model)."""
        backend, model = parse_model_spec(spec) if spec else (None, None)
        return cls(role=role, backend=backend, model=model, **fields)

    @classmethod
    def coerce(cls, value: "RoleSpec | BackendOptions | str | dict | None", role: str = "") -> "RoleSpec":
        if isinstance(value, RoleSpec):
            return value if value.role or not role else dataclasses.replace(value, role=role)
        if isinstance(value, BackendOptions):
            return cls(role=role, backend=value.backend, model=value.model, base_url=value.base_url,
                       temperature=value.temperature, max_tokens=value.max_tokens, stop=list(value.stop or []) or None,
                       seed=value.seed, extra=dict(value.extra or {}))
        if value is None or isinstance(value, str):
            return cls.parse(value, role=role)
        if isinstance(value, dict):
            d = dict(value)
            spec = d.pop("spec", None)
            if spec is not None:
                return cls.parse(spec, role=d.pop("role", role), **d)
            return cls(role=d.pop("role", role), **d)
        raise TypeError(f"role {role!r}: expected a RoleSpec, BackendOptions, 'BACKEND:MODEL' or dict, "
                        f"got {type(value).__name__}")

    def resolved(self, default_backend: str) -> "RoleSpec":
        """Backend filled in (the default for a bare model), base URL from the provider's variable if unset."""
        import os

        backend = self.backend or default_backend
        canonical = _backend_name(backend) or backend
        base_url = self.base_url or (os.environ.get(BASE_URL_ENV.get(canonical, "")) or None)
        return dataclasses.replace(self, backend=canonical, base_url=base_url)

    def options(self, engine: BackendOptions | None = None, default_backend: str | None = None) -> BackendOptions:
        """The BackendOptions this role's requests are sent with (engine settings shared, role settings on top)."""
        engine = engine or BackendOptions()
        spec = self.resolved(default_backend or engine.backend)
        # the role's own URL, else its provider's variable, else the engine's --base-url when it is that backend's
        base_url = spec.base_url or (engine.base_url if spec.backend == engine.backend else None)
        changes: dict[str, Any] = {"backend": spec.backend, "model": spec.model, "base_url": base_url}
        for name in ("temperature", "max_tokens", "seed"):
            if getattr(spec, name) is not None:
                changes[name] = getattr(spec, name)
        if spec.stop is not None:
            changes["stop"] = list(spec.stop)
        if spec.extra:
            changes["extra"] = {**(engine.extra or {}), **spec.extra}
        return dataclasses.replace(engine, **changes)

    @property
    def label(self) -> str:
        return f"{self.backend or '?'}:{self.model or 'default'}"

    def identity(self) -> dict[str, Any]:
        """What decides this role's outputs (for a run's identity)."""
        return {"backend": self.backend, "model": self.model, "base_url": self.base_url,
                "temperature": self.temperature, "max_tokens": self.max_tokens, "stop": self.stop,
                "seed": self.seed}


@dataclass
class RoleDecl:
    """A role a command declares: its name, help, default model spec, whether the flag may repeat."""

    name: str
    help: str = ""
    default: str | None = None
    repeatable: bool = False
    flags: tuple[str, ...] = ROLE_FLAGS

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"a role name needs letters, digits, '-' or '_' (got {self.name!r})")
        unknown = set(self.flags) - set(ROLE_FLAGS)
        if unknown:
            raise ValueError(f"role {self.name!r}: unknown per-role flags {sorted(unknown)}; known: {ROLE_FLAGS}")


@dataclass
class Roles:
    """The models of a multi-role command: one :class:`RoleSpec` per role, engine options shared.

    ``specs`` maps role names (repeatable roles expanded to ``name.0``, ``name.1`` ...)
    to resolved specs; ``engine`` holds the shared options (concurrency, rpm/tpm,
    cache, budget, dry run ...); ``groups`` maps each declared role to its names.
    """

    specs: dict[str, RoleSpec]
    engine: BackendOptions = field(default_factory=BackendOptions)
    default_backend: str = "hf"
    groups: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_specs(cls, specs: dict[str, Any], engine: BackendOptions | None = None,
                   default_backend: str | None = None) -> "Roles":
        """Roles from ``{"user": "openai:gpt-4o-mini", "judge": RoleSpec(...), "responder": ["a", "b"]}``.

        A list value is a repeatable role (``responder.0``, ``responder.1`` ...).
        """
        engine = engine or BackendOptions()
        default_backend = default_backend or engine.backend
        out: dict[str, RoleSpec] = {}
        groups: dict[str, list[str]] = {}
        for role, value in specs.items():
            if isinstance(value, (list, tuple)):
                names = [f"{role}.{i}" for i in range(len(value))]
                for name, v in zip(names, value):
                    out[name] = RoleSpec.coerce(v, name).resolved(default_backend)
            else:
                names = [role]
                out[role] = RoleSpec.coerce(value, role).resolved(default_backend)
            groups[role] = names
        return cls(out, engine, default_backend, groups)

    def __contains__(self, role: str) -> bool:
        return role in self.specs

    def __getitem__(self, role: str) -> RoleSpec:
        try:
            return self.specs[role]
        except KeyError:
            known = ", ".join(self.specs) or "none"
            raise UsageError(f"no model for the role {role!r} (roles: {known})") from None

    def names(self, role: str | None = None) -> list[str]:
        """Every role name, or the names of one declared (repeatable) role."""
        if role is None:
            return list(self.specs)
        return list(self.groups.get(role) or ([role] if role in self.specs else []))

    def options_for(self, role: str) -> BackendOptions:
        return self[role].options(self.engine, self.default_backend)

    def identity(self) -> dict[str, Any]:
        return {name: spec.identity() for name, spec in self.specs.items()}

    def describe(self) -> str:
        return ", ".join(f"{name}={spec.label}" for name, spec in self.specs.items())


def as_roles(roles: "Roles | dict[str, Any] | None", options: BackendOptions | None = None) -> Roles:
    """A Roles object from Roles, a dict of specs, or None (one ``default`` role from ``options``)."""
    if isinstance(roles, Roles):
        if options is not None:
            return dataclasses.replace(roles, engine=options)
        return roles
    engine = options or BackendOptions()
    if roles is None:
        return Roles.from_specs({"default": RoleSpec.coerce(engine, "default")}, engine)
    return Roles.from_specs(dict(roles), engine)


# --------------------------------------------------------------------------- the CLI side
def _decls(roles: Iterable[RoleDecl | str]) -> list[RoleDecl]:
    out = [r if isinstance(r, RoleDecl) else RoleDecl(str(r)) for r in roles]
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise ValueError(f"two roles share a name: {names}")
    return out


def role_params(roles: Sequence[RoleDecl | str], default_backend: str) -> list[inspect.Parameter]:
    """The typer parameters for the role flags and the shared engine options."""
    import typer

    from ..options import option_params

    params: list[inspect.Parameter] = []
    kw = inspect.Parameter.KEYWORD_ONLY
    for d in _decls(roles):
        flag, var = d.name.replace("_", "-"), d.name.replace("-", "_")
        many = d.repeatable
        what = f"the {d.name} role" + (f" ({d.help})" if d.help else "")
        default_txt = d.default or f"the {default_backend} backend's default model"
        params.append(inspect.Parameter(
            f"role_{var}_model", kw, annotation=list[str] | None if many else str | None,
            default=typer.Option(None, f"--{flag}-model", show_default=False,
                                 help=f"Model of {what}: BACKEND:MODEL (e.g. openai:gpt-4o-mini) or a model of "
                                      f"--backend (default: {default_txt})." + (" Repeat for several." if many else ""))))
        helps = {"base_url": ("str", f"API base URL for {what} (default: --{flag}-model's provider variable, e.g. OPENAI_BASE_URL)."),
                 "temperature": ("float", f"Sampling temperature for {what} (default: the backend option, 0)."),
                 "max_tokens": ("int", f"Most tokens to generate per call of {what}.")}
        for name in d.flags:
            t, h = helps[name]
            base = {"str": str, "float": float, "int": int}[t]
            params.append(inspect.Parameter(
                f"role_{var}_{name}", kw, annotation=list[base] | None if many else base | None,
                default=typer.Option(None, f"--{flag}-{name.replace('_', '-')}", help=h, show_default=False)))
    params.append(inspect.Parameter(
        "role_default_backend", kw, annotation=str,
        default=typer.Option(default_backend, "--backend",
                             help="Backend of role models given without one (BACKEND:MODEL picks another per role).")))
    params += [p for p in option_params(BackendOptions) if p.name not in ROLE_FIELDS]
    return params


def build_roles(roles: Sequence[RoleDecl | str], values: dict[str, Any], default_backend: str) -> Roles:
    """A :class:`Roles` from the CLI values :func:`role_params` produced."""
    from ..options import build

    backend = values.get("role_default_backend") or default_backend
    if _backend_name(backend) is None:
        from ..plugins import registry

        raise UsageError(f"--backend: unknown backend {backend!r} (known: {', '.join(registry('backends').names())})")
    engine = build(BackendOptions, {k: v for k, v in values.items() if not k.startswith("role_")})
    engine = dataclasses.replace(engine, backend=backend)
    specs: dict[str, Any] = {}
    for d in _decls(roles):
        var = d.name.replace("-", "_")
        models = values.get(f"role_{var}_model")
        if d.repeatable:
            models = list(models or ([d.default] if d.default else [None]))
        per = {name: values.get(f"role_{var}_{name}") for name in d.flags}
        if d.repeatable:
            entries = []
            for i, m in enumerate(models):
                fields_ = {}
                for name, v in per.items():
                    if not v:
                        continue
                    if len(v) not in (1, len(models)):
                        raise UsageError(f"--{d.name}-{name.replace('_', '-')} was given {len(v)} times for "
                                         f"{len(models)} --{d.name}-model values (give it once or once per model)")
                    fields_[name] = v[0] if len(v) == 1 else v[i]
                entries.append(RoleSpec.parse(m, **fields_))
            specs[d.name] = entries
        else:
            fields_ = {name: v for name, v in per.items() if v is not None}
            specs[d.name] = RoleSpec.parse(models if models is not None else d.default, **fields_)
    return Roles.from_specs(specs, engine, backend)


def with_roles(roles: Sequence[RoleDecl | str], param: str = "roles", *,
               default_backend: str = "hf") -> Callable[[Callable], Callable]:
    """Decorator for a multi-role command: role flags + shared engine flags -> one :class:`Roles` as ``param``.

    ``roles``: :class:`RoleDecl` objects (or plain names). Do not combine it with
    ``with_options(BackendOptions, ...)`` on the same command: the engine options
    come with it (once).
    """
    from ..options import inject_params

    decls = _decls(roles)
    return inject_params(param, role_params(decls, default_backend),
                         lambda values: build_roles(decls, values, default_backend))


__all__ = ["RoleSpec", "RoleDecl", "Roles", "parse_model_spec", "with_roles", "as_roles", "build_roles",
           "role_params", "BASE_URL_ENV"]
