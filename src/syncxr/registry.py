"""One lazy name -> factory registry per kind of plug-in (backend, transport, dataset, task...).

A registry is declared once, in the module that defines the kind's protocol, with a table of
names and import targets ("package.module:factory"):

    EXTRACTORS = Registry("extractor", {"lexicon": "syncxr.text.lexicon_extractor:LexiconExtractor"})

Adding a plug-in is one new file plus one line in that table; nothing is imported until the name
is used, so heavy optional dependencies (torch, diffusers, ray) load only for the chosen backend.
`names()` is the one source of valid names for CLI help, `syncxr doctor` and error messages.

Options are checked against the factory's signature *without building anything* (`check`), so
the parent process of a GPU run validates a config without touching CUDA; `build` checks, then
calls. Shared objects the pipeline owns (the ontology, the image size...) are passed as
`context`: each goes to the factory only if it names that parameter and the user did not set it.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from syncxr.errors import UserError

T = TypeVar("T")


class UnknownName(UserError, KeyError):
    """A name no registry entry has; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    def __init__(
        self,
        kind: str,
        entries: Mapping[str, str] | None = None,
        requires: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, Callable[..., T]] = {}
        # Import names of the optional packages a plug-in needs (for `syncxr doctor`).
        self._requires: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in (requires or {}).items()}
        for name, target in (entries or {}).items():
            self.add(name, target)

    # --- declaring -------------------------------------------------------------------------

    def add(self, name: str, target: str) -> None:
        """Declare `name` as the factory at `target` ("package.module:attr"), imported on first use."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        if ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: target {target!r} must look like 'package.module:factory'")
        self._targets[name] = target

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator form, for factories defined at run time (tests, user plug-ins)."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._loaded[name] = factory
            return factory

        return deco

    def requires(self, name: str) -> tuple[str, ...]:
        """Optional packages `name` needs (import names), as declared with the registry."""
        self._require(name)
        return self._requires.get(name, ())

    def unregister(self, name: str) -> None:
        """Remove a name (plug-ins registered at run time, tests)."""
        self._require(name)
        self._targets.pop(name, None)
        self._loaded.pop(name, None)

    # --- looking up ------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted({*self._targets, *self._loaded})

    def __contains__(self, name: object) -> bool:
        return name in self._targets or name in self._loaded

    def target(self, name: str) -> str:
        """Where `name` lives ("package.module:attr"), without importing it."""
        self._require(name)
        return self._targets.get(name) or _qualname(self._loaded[name])

    def get(self, name: str) -> Callable[..., T]:
        """The factory of `name` (its module is imported now); a miss lists the valid names."""
        self._require(name)
        if name not in self._loaded:
            module, _, attr = self._targets[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]

    def _require(self, name: str) -> None:
        if name not in self:
            raise UnknownName(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names()) or '(none)'}")

    # --- options and building --------------------------------------------------------------

    def check(self, name: str, options: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The keyword arguments `build` would pass: options checked against the factory's
        parameters (names and types) plus the context values it accepts. Builds nothing."""
        factory = self.get(name)
        params = _parameters(factory)
        where = f"{self.kind} {name!r}"
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        named = {k: p for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        unknown = sorted(k for k in options if k not in named)
        if unknown and not has_var_kw:
            accepted = ", ".join(named) or "(none)"
            raise UserError(f"{where}: unknown option(s) {unknown}; accepted options: {accepted}")
        kwargs = dict(options)
        for key, value in (context or {}).items():
            if key in named and key not in kwargs:
                kwargs[key] = value
        missing = [k for k, p in named.items() if p.default is p.empty and k not in kwargs]
        if missing:
            raise UserError(f"{where}: missing required option(s) {missing}; set them under the backend's `options:`")
        hints = _type_hints(factory)
        for key in options:
            if key in named and key in hints:
                kwargs[key] = _validate(hints[key], options[key], f"{where}: option {key!r}")
        extra_check = getattr(factory, "check_options", None)
        if callable(extra_check):  # a factory taking **kwargs checks what it forwards
            extra_check(dict(kwargs))
        return kwargs

    def build(self, name: str, /, **options: Any) -> T:
        """Check the options (see `check`), then call the factory."""
        return self.create(name, options)

    def create(self, name: str, options: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None) -> T:
        """`build` with shared pipeline objects offered as `context`. Errors raised inside the
        factory are not reworded: a bug in a backend stays a bug, not a "bad option"."""
        kwargs = self.check(name, options or {}, context)
        return self.get(name)(**kwargs)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(factory).parameters)
    if inspect.isclass(factory):
        params.pop("self", None)
    return params


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # annotations naming TYPE_CHECKING-only types: check names only
        return {}


_SIMPLE = (bool, int, float, str, type(None))


def _validate(hint: Any, value: Any, where: str) -> Any:
    """Check a user option against its annotation when the annotation is plain data (numbers,
    strings, paths, lists, dicts, unions of those); richer types are passed through."""
    if not _is_plain(hint):
        return value
    try:
        adapter = TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
        checked = adapter.validate_python(value, strict=False)
    except ValidationError as e:
        problem = e.errors()[0].get("msg", str(e))
        raise UserError(f"{where}: {problem} (got {value!r})") from None
    except Exception:  # pydantic cannot build a schema for this annotation: names only
        return value
    # Keep the user's value when it already satisfies the type (no silent re-typing of e.g. str paths).
    return value if _same_kind(value, checked) else checked


def _same_kind(value: Any, checked: Any) -> bool:
    return type(value) is type(checked) or (isinstance(value, str) and not isinstance(checked, (int, float, bool)))


def _is_plain(hint: Any) -> bool:
    from pathlib import Path

    if hint in _SIMPLE or hint is Path:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return all(_is_plain(a) for a in typing.get_args(hint))
    if origin in (list, tuple, dict):
        return all(_is_plain(a) for a in typing.get_args(hint) if a is not Ellipsis)
    if origin is typing.Literal:
        return True
    return False
