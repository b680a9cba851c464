"""What the Patch* RPCs share: the `action` word, which fields a patch may set, metadata merges.

Clarifai's patches name an action: `overwrite` (given fields replace the stored ones), `merge`
(given fields are merged in: dicts key by key, lists by id), `remove` (given keys or ids are taken
out). A patch that sets a field this server cannot change is refused with the field named, so
nothing is silently ignored and nothing is half-changed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ApiError

ACTIONS = ("overwrite", "merge", "remove")
MAX_METADATA_BYTES = 64 * 1024


def patch_action(
    value: str, *, code: int, allowed: Iterable[str] = ACTIONS, what: str = "this patch"
) -> str:
    """The normalised action, or `code` naming the actions that are supported."""
    allowed = tuple(allowed)
    action = (value or "").strip().lower()
    if action in allowed:
        return action
    choices = ", ".join(f"'{a}'" for a in allowed)
    if not action:
        raise ApiError(code, f"action is required for {what}: use {choices}", field="action")
    raise ApiError(
        code, f"action '{value[:40]}' is not supported for {what}: use {choices}", field="action"
    )


def set_fields(message) -> list[str]:
    """Names of the fields a request message sets (non-default scalars, present messages)."""
    return [f.name for f, _ in message.ListFields()]


def check_fields(
    message,
    *,
    code: int,
    what: str,
    patchable: Iterable[str],
    identity: Mapping[str, str] | None = None,
    ignored: Iterable[str] = (),
    creating: bool = False,
) -> set[str]:
    """Refuse fields that cannot change. `identity` maps fields that name the object (id, user_id,
    app_id, input_id...) to their stored value: setting them to anything else is refused.
    `ignored` fields are accepted and not stored (e.g. a concept's `value`, which clients send).
    Returns the names of the patchable fields that are set. `creating` words the refusal for a
    create request (a field this server does not store) instead of a patch."""
    patchable = set(patchable)
    identity = dict(identity or {})
    ignored = set(ignored)
    given: set[str] = set()
    for name in set_fields(message):
        if name in identity:
            value = getattr(message, name)
            if value and value != identity[name]:
                raise ApiError(
                    code,
                    f"{what}: {name} cannot be changed (it is '{identity[name][:64]}', the patch "
                    f"says '{str(value)[:64]}')",
                    field=name,
                )
            continue
        if name in ignored:
            continue
        if name not in patchable:
            allowed = ", ".join(sorted(patchable)) or "nothing"
            refusal = (
                f"{name} is not supported by this server (supported: {allowed})"
                if creating
                else f"{name} cannot be changed by a patch (patchable: {allowed})"
            )
            raise ApiError(code, f"{what}: {refusal}", field=name)
        given.add(name)
    return given


def has_nul(value: Any) -> bool:
    """True when a JSON value holds a NUL character (PostgreSQL text and jsonb refuse it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def check_metadata(value: dict, *, code: int, field: str = "metadata", limit: int = 0) -> dict:
    """`value` if it can be stored (no NUL, at most `limit` bytes of JSON), else `code`."""
    limit = limit or MAX_METADATA_BYTES
    if has_nul(value):
        raise ApiError(code, f"{field} holds a NUL character", field=field)
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ApiError(code, f"{field} is {size} bytes of JSON; at most {limit}", field=field)
    return value


def merge_dict(base: dict, patch: Mapping) -> dict:
    """A copy of `base` with `patch` merged in, nested dicts key by key (others replace)."""
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge_dict(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def remove_keys(base: dict, patch: Mapping) -> dict:
    """A copy of `base` without the keys `patch` names; a nested dict in `patch` removes inside
    that key (an empty one removes the key itself)."""
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if isinstance(value, Mapping) and value and isinstance(out.get(key), dict):
            out[key] = remove_keys(out[key], value)
        else:
            out.pop(key, None)
    return out


def apply_to_dict(action: str, base: dict, patch: Mapping) -> dict:
    """overwrite -> `patch`; merge -> merged; remove -> `base` without `patch`'s keys."""
    if action == "overwrite":
        return copy.deepcopy(dict(patch))
    if action == "merge":
        return merge_dict(base, patch)
    return remove_keys(base, patch)
