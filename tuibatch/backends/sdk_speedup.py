"""Opt-out speed-up for google-genai's generated serializers (issue 10, section 2).

google-genai 3.6.1 serializes every Interactions request and parses every response through
``google/genai/_gaos/utils/serializers.py``: ``marshal_json`` and ``unmarshal`` (the latter also
behind ``unmarshal_json``, ``construct_unvalidated`` and ``get_pydantic_model``) each call
pydantic's ``create_model`` to build a brand-new wrapper model class, ``Marshaller`` or
``Unmarshaller`` with a single ``body`` field of the type being (de)serialized, and then use it
once. Building a pydantic class (schema + validator + serializer) costs milliseconds; for the
``Interaction`` type it is most of the SDK's CPU per call (see docs/upstream-sdk-serializer-bug.md).

What this module changes, and only while installed: the ``create_model`` name *inside that one
module* is rebound to a memoizing wrapper. Both functions look that global up at call time, so
the single rebinding reaches every caller, including the modules that did
``from .serializers import marshal_json`` (their copies are the unchanged functions, which read
the patched global). The functions themselves are not replaced.

The wrapper returns a cached class only for a call of exactly the shape the SDK makes
(``create_model("Marshaller" | "Unmarshaller", body=(typ, ...), __config__=<the SDK's config>)``)
and only for the very same ``typ`` object (identity, not mere equality, so ``Union[A, B]`` and
``Union[B, A]`` never share a class). Anything else (an unhashable type, another call shape, a
full cache) goes to pydantic's ``create_model`` unchanged. The class is built with the same
``__module__`` the SDK's own call would give it, so names, forward references and error texts do
not change. A cached class is used exactly as a fresh one would be: the SDK validates or dumps one
value with it and keeps nothing else, and pydantic model classes are safe to reuse across calls
and threads. A race between two threads at most builds the same class twice.

The same goes for ``typing.get_type_hints`` in the SDK's ``url`` and ``queryparams`` helpers:
every request resolves the type hints of its path- and query-parameter class afresh (evaluating
forward references: a ``compile`` per field, about a fifth of the CPU left per call once the
classes are cached). The name is rebound in those two modules to a wrapper that answers a call of
exactly the shape they make (one class, no options) from a cache keyed by the class object, with a
fresh copy of the dict each time; any other call goes to ``typing.get_type_hints`` unchanged.

It refuses to install (and logs a WARNING on ``tuibatch.backends``) on an SDK version it was not
verified against, or when the SDK's code is not shaped as expected. ``TUIBATCH_SDK_SPEEDUP=0``
turns it off. This is the one place tuibatch touches a private module of the SDK, on purpose and
guarded; delete it when the SDK caches these classes itself.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger("tuibatch.backends")

#: SDK versions whose serializers were read and tested with this patch (tests/test_sdk_speedup.py).
VERIFIED_SDK_VERSIONS = frozenset({"3.6.1"})
ENV_FLAG = "TUIBATCH_SDK_SPEEDUP"
_OFF_VALUES = frozenset({"0", "false", "no", "off"})
_SERIALIZERS = "google.genai._gaos.utils.serializers"
_PATCHED_FUNCTIONS = ("marshal_json", "unmarshal")
_MODEL_NAMES = frozenset({"Marshaller", "Unmarshaller"})
_SDK_CONFIG = {"populate_by_name": True, "arbitrary_types_allowed": True}
#: The SDK (de)serializes a few dozen distinct types at most; past this, stop caching new ones.
MAX_CACHED_CLASSES = 512


@dataclass(frozen=True)
class SpeedupStatus:
    """What :func:`install` did: ``applied`` is True while the speed-up is active."""

    applied: bool
    reason: str


class CachedCreateModel:
    """Stands in for ``create_model`` inside the SDK's serializers module; see the module doc."""

    def __init__(self, original: Callable[..., Any], module_name: str) -> None:
        self.original = original
        self.module_name = module_name
        self._cache: dict[tuple[str, Any], tuple[Any, Any]] = {}
        self.hits = 0
        self.misses = 0

    def _key(self, model_name: Any, kwargs: dict[str, Any]) -> tuple[str, Any] | None:
        """The cache key for a call of the SDK's exact shape, else None (do not cache)."""
        if model_name not in _MODEL_NAMES or kwargs.keys() != {"body", "__config__"}:
            return None
        body, config = kwargs["body"], kwargs["__config__"]
        if not (isinstance(body, tuple) and len(body) == 2 and body[1] is Ellipsis):
            return None
        if config != _SDK_CONFIG:
            return None
        key = (model_name, body[0])
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def __call__(self, model_name: Any, /, **kwargs: Any) -> Any:
        key = self._key(model_name, kwargs)
        # Same module as the SDK's own call would record (pydantic reads it from the caller's frame).
        kwargs.setdefault("__module__", self.module_name)
        if key is None:
            return self.original(model_name, **kwargs)
        entry = self._cache.get(key)
        if entry is not None and entry[0] is key[1]:
            self.hits += 1
            return entry[1]
        self.misses += 1
        cls = self.original(model_name, **kwargs)
        if len(self._cache) < MAX_CACHED_CLASSES or key in self._cache:
            self._cache[key] = (key[1], cls)
        return cls

    def cached_types(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()
        self.hits = self.misses = 0


class CachedTypeHints:
    """Stands in for ``get_type_hints`` inside the SDK's url/queryparams helpers."""

    def __init__(self, original: Callable[..., Any]) -> None:
        self.original = original
        self._cache: dict[type, dict[str, Any]] = {}

    def __call__(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or not isinstance(obj, type):
            return self.original(obj, *args, **kwargs)
        hints = self._cache.get(obj)
        if hints is None:
            hints = self.original(obj)
            if len(self._cache) < MAX_CACHED_CLASSES:
                self._cache[obj] = hints
        return dict(hints)


#: the SDK helpers whose ``get_type_hints`` is rebound to a :class:`CachedTypeHints`
_TYPE_HINT_MODULES = ("google.genai._gaos.utils.url", "google.genai._gaos.utils.queryparams")

_lock = threading.Lock()
_installed: tuple[ModuleType, CachedCreateModel] | None = None
_hints: list[tuple[ModuleType, CachedTypeHints]] = []


def sdk_version() -> str:
    from google.genai import version

    return str(version.__version__)


def _refuse(reason: str) -> SpeedupStatus:
    log.warning("SDK serializer speed-up not applied: %s", reason)
    return SpeedupStatus(False, reason)


def _shape_problem(serializers: ModuleType, original: Any) -> str | None:
    """Why the SDK's serializers are not the code this patch was written for, or None."""
    import pydantic

    if original is not pydantic.create_model:
        return f"{_SERIALIZERS}.create_model is not pydantic.create_model"
    try:
        params = inspect.signature(original).parameters
    except (TypeError, ValueError):
        return "cannot read pydantic.create_model's signature"
    if "__module__" not in params or "__config__" not in params:
        return "pydantic.create_model has no __module__/__config__ parameters"
    for name in _PATCHED_FUNCTIONS:
        fn = getattr(serializers, name, None)
        code = getattr(fn, "__code__", None)
        if code is None:
            return f"{_SERIALIZERS}.{name} is missing or not a plain function"
        if "create_model" not in code.co_names:
            return f"{_SERIALIZERS}.{name} no longer calls create_model"
    return None


def install() -> SpeedupStatus:
    """Apply the speed-up once per process; safe to call again (and from several threads)."""
    global _installed
    with _lock:
        if _installed is not None:  # the status says what is in effect, whatever the flag now says
            return SpeedupStatus(True, "already installed")
        flag = os.environ.get(ENV_FLAG, "").strip()
        if flag.lower() in _OFF_VALUES:
            reason = f"disabled by {ENV_FLAG}={flag}"
            log.info("SDK serializer speed-up %s", reason)
            return SpeedupStatus(False, reason)
        try:
            version = sdk_version()
        except Exception as exc:  # noqa: BLE001 - any failure means "do not patch"
            return _refuse(f"cannot read the google-genai version ({exc})")
        if version not in VERIFIED_SDK_VERSIONS:
            verified = ", ".join(sorted(VERIFIED_SDK_VERSIONS))
            return _refuse(f"google-genai {version} is not a verified version ({verified})")
        try:
            import importlib

            serializers = importlib.import_module(_SERIALIZERS)
        except Exception as exc:  # noqa: BLE001
            return _refuse(f"cannot import {_SERIALIZERS} ({exc})")
        original: Any = getattr(serializers, "create_model", None)
        problem = _shape_problem(serializers, original)
        if problem is not None:
            return _refuse(problem)
        import typing

        helpers = [importlib.import_module(name) for name in _TYPE_HINT_MODULES]
        for module in helpers:
            if getattr(module, "get_type_hints", None) is not typing.get_type_hints:
                return _refuse(f"{module.__name__}.get_type_hints is not typing.get_type_hints")
        wrapper = CachedCreateModel(original, serializers.__name__)
        serializers.create_model = wrapper  # type: ignore[attr-defined]
        _installed = (serializers, wrapper)
        for module in helpers:
            hints = CachedTypeHints(typing.get_type_hints)
            module.get_type_hints = hints  # type: ignore[attr-defined]
            _hints.append((module, hints))
    log.info("SDK serializer speed-up applied (google-genai %s)", version)
    return SpeedupStatus(True, f"applied to google-genai {version}")


def uninstall() -> bool:
    """Put pydantic's ``create_model`` back; False if nothing of ours was installed."""
    global _installed
    with _lock:
        if _installed is None:
            return False
        serializers, wrapper = _installed
        _installed = None
        while _hints:
            module, hints = _hints.pop()
            if getattr(module, "get_type_hints", None) is hints:
                module.get_type_hints = hints.original  # type: ignore[attr-defined]
        if getattr(serializers, "create_model", None) is wrapper:
            serializers.create_model = wrapper.original  # type: ignore[attr-defined]
        else:
            log.warning(
                "SDK serializer speed-up: create_model was rebound by someone else; left it"
            )
        wrapper.clear()
    return True


def active() -> CachedCreateModel | None:
    """The installed wrapper (its ``hits``/``misses`` show the cache working), or None."""
    installed = _installed
    return installed[1] if installed is not None else None
