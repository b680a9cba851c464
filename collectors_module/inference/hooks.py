"""After-predict hooks: how other apps (collectors) observe PostModelOutputs without the predict
path knowing about them. A hook must be cheap and must never raise into the prediction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("collectors.inference.hooks")


@dataclass
class PredictionEvent:
    model_version: Any  # inference.models.ModelVersion (with .model and .model.app loaded)
    caller: Any  # accounts.models.User who made the call (the key's owner)
    request_id: str
    inputs: list[Any]  # resources_pb2.Input as sent, image bytes in data.image.base64 when given
    outputs: list[Any]  # resources_pb2.Output, one per input (same order), each with a status
    fetched: dict[int, bytes] = field(default_factory=dict)  # input index -> bytes fetched from URL


_HOOKS: list[Callable[[PredictionEvent], None]] = []


def register_after_predict(hook: Callable[[PredictionEvent], None]) -> None:
    if hook not in _HOOKS:
        _HOOKS.append(hook)


def run_after_predict(event: PredictionEvent) -> None:
    for hook in list(_HOOKS):
        try:
            hook(event)
        except Exception:  # a broken hook must never fail or change the prediction
            log.exception("after-predict hook %r failed", hook)


# Who uses a model version, for DeleteModels' refusal: other apps (collectors) register a
# function (versions queryset, acting owner) -> [(model id, "what uses it")].
_USERS: list[Callable[[Any, Any], list[tuple[str, str]]]] = []


def register_model_users(fn: Callable[[Any, Any], list[tuple[str, str]]]) -> None:
    if fn not in _USERS:
        _USERS.append(fn)


def model_users(versions, owner) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for fn in list(_USERS):
        out.extend(fn(versions, owner))
    return out
