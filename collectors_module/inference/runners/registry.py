"""Runner lookup: `builtin:<name>` and `remote:<kind>` -> a Runner, loaded once per process.

Loading is guarded by a lock so two threads never build the same runner twice (OCR weights take a
fraction of a second and memory); lookups of an already-loaded runner take no lock.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from collectors_module.core.errors import SC, ApiError

from .base import Runner
from .builtin import BY_NAME
from .remote import make_remote_runner

MAX_REMOTE_RUNNERS = 256  # distinct remote configs kept; older ones are rebuilt on demand

_cache: OrderedDict[tuple[str, str], Runner] = OrderedDict()
_lock = threading.Lock()


def _cache_key(runner: str, config: dict[str, Any]) -> tuple[str, str]:
    if runner.startswith("builtin:"):
        return (runner, "")  # built-ins ignore per-version config: one instance per process
    return (runner, json.dumps(config or {}, sort_keys=True, default=str))


def _build(runner: str, config: dict[str, Any]) -> Runner:
    kind, _, name = runner.partition(":")
    if kind == "builtin":
        spec = BY_NAME.get(name)
        if spec is None:
            raise ApiError(SC.MODEL_INVALID_ARGUMENT, f"Unknown built-in runner '{runner}'")
        return spec.load()
    if kind == "remote":
        return make_remote_runner(name, dict(config or {}))
    if kind == "operator":
        raise ApiError(
            SC.MODEL_INVALID_REQUEST,
            f"'{name}' is an operator: it runs inside workflows, not through PostModelOutputs",
        )
    raise ApiError(SC.MODEL_INVALID_REQUEST, f"This model version has no runner ('{runner}')")


def get_runner(runner: str, config: dict[str, Any] | None = None) -> Runner:
    """The Runner for a model version's `runner` string and config (cached, thread-safe)."""
    key = _cache_key(runner, config or {})
    found = _cache.get(key)
    if found is not None:
        return found
    with _lock:
        found = _cache.get(key)
        if found is None:
            found = _build(runner, config or {})
            _cache[key] = found
            remote = [k for k in _cache if not k[0].startswith("builtin:")]
            for old in remote[: max(0, len(remote) - MAX_REMOTE_RUNNERS)]:
                _cache.pop(old, None)
        return found


def is_runnable(runner: str) -> bool:
    return runner.startswith(("builtin:", "remote:"))
