"""Count limits checked before the expensive work (finding 6 of issue 15).

Every list a request carries is bounded on every route, before any handler runs:

- REST: `check_raw_body` bounds the number of JSON values from the raw bytes (one `bytes.count`,
  before `json.loads` allocates anything), `check_lists` bounds the top-level lists of the parsed
  JSON before any protobuf is built (building 12 million empty `Input` messages costs gigabytes);
- every transport: `check_message` bounds the top-level repeated fields of the request message in
  `dispatch` (gRPC messages arrive parsed, already bounded by GRPC_MAX_MESSAGE_BYTES).

`inputs` lists are bounded by the RPC's own input limit (INPUTS_MAX_PER_REQUEST,
MAX_PREDICT_INPUTS, WORKFLOW_MAX_RESULT_INPUTS), every other list by API_MAX_LIST_ITEMS;
handlers may still apply tighter limits of their own.
"""

from __future__ import annotations

from django.conf import settings

from collectors_module.core.errors import SC, ApiError

# RPCs whose `inputs` have a limit (and a status code) of their own; the rest use PostInputs'.
_INPUT_LIMITS = {
    "PostModelOutputs": ("MAX_PREDICT_INPUTS", SC.PREDICT_INVALID_REQUEST),
    "PostWorkflowResults": ("WORKFLOW_MAX_RESULT_INPUTS", SC.WORKFLOW_INVALID_REQUEST),
}


def _cap(rpc_name: str, field: str) -> tuple[int, int]:
    if field == "inputs":
        setting, code = _INPUT_LIMITS.get(
            rpc_name, ("INPUTS_MAX_PER_REQUEST", SC.INPUT_INVALID_REQUEST)
        )
        return int(getattr(settings, setting)), code
    return int(settings.API_MAX_LIST_ITEMS), SC.CONN_INVALID_REQUEST


def _too_many(field: str, count: int, cap: int, code: int) -> ApiError:
    return ApiError(
        code, f"{count} items in '{field}' in one request; at most {cap} are allowed", field=field
    )


def check_raw_body(raw: bytes) -> None:
    """Every JSON array element or object member after the first is preceded by a comma."""
    limit = int(settings.API_MAX_JSON_VALUES)
    if raw.count(b",") >= limit:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"Request body holds more than {limit} JSON values; send fewer items per request",
        )


def check_lists(rpc_name: str, data: dict) -> None:
    for field, value in data.items():
        if isinstance(value, list):
            cap, code = _cap(rpc_name, field)
            if len(value) > cap:
                raise _too_many(field, len(value), cap, code)


def check_message(rpc_name: str, message) -> None:
    for descriptor, value in message.ListFields():
        is_map = descriptor.message_type is not None and (
            descriptor.message_type.GetOptions().map_entry
        )
        if descriptor.is_repeated and not is_map:
            cap, code = _cap(rpc_name, descriptor.name)
            if len(value) > cap:
                raise _too_many(descriptor.name, len(value), cap, code)
