"""Writers for inputs: create (one or a batch), delete (one or many).

Image bytes go to the default storage (blob storage) under a content-addressed name inside the
app's folder; the row keeps the name. An image given only as a URL is stored as that URL and
never fetched here. Everything else in `Data` (concepts, regions, metadata, ...) is kept as
JSON in `Input.data` and restored by `convert.input_to_pb`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from clarifai_grpc.grpc.api import resources_pb2
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.ids import new_hex_id, validate_id
from collectors_module.core.images import validate_image
from collectors_module.core.protojson import to_dict

from . import conf
from .models import Input, input_blob_path

log = logging.getLogger("collectors.inputs")

CONFLICT_NOT_SET = resources_pb2.INPUT_ID_CONFLICT_RESOLUTION_NOT_SET
CONFLICT_SKIP = resources_pb2.SKIP
CONFLICT_SUFFIX = resources_pb2.SUFFIX
MAX_URL_LENGTH = 2048


@dataclass
class _Prepared:
    public_id: str
    data_json: dict
    text: str
    image_bytes: bytes | None
    image_url: str
    content_hash: str
    annotations: list


def _sha256(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def _check_url(url: str, field: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise ApiError(
            SC.INPUT_INVALID_URL, f"{field} is longer than {MAX_URL_LENGTH} characters", field=field
        )
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise ApiError(
            SC.INPUT_INVALID_URL, f"{field} contains spaces or control characters", field=field
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ApiError(SC.INPUT_INVALID_URL, f"{field} is not a valid URL", field=field) from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ApiError(
            SC.INPUT_INVALID_URL, f"{field} must be an http(s) URL with a host", field=field
        )
    return url


def _prepare(
    input_pb: resources_pb2.Input,
    image_bytes: bytes | None,
    annotations: list | None,
    extra_metadata: dict | None,
) -> _Prepared:
    """Validate one input and split it into columns, blob bytes and the JSON rest (no writes)."""
    public_id = input_pb.id or new_hex_id()
    validate_id(public_id, "input id", SC.INPUT_INVALID_ARGUMENT, field="id")
    data = resources_pb2.Data()
    data.CopyFrom(input_pb.data)

    if data.video.base64 or data.audio.base64 or data.frames:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            "only image and text inputs are supported (no video or audio bytes)",
            field="data",
        )
    if image_bytes is None and data.image.base64:
        image_bytes = bytes(data.image.base64)
    image_url = data.image.url
    if image_url:
        _check_url(image_url, "data.image.url")
    if image_bytes is not None:
        info = validate_image(image_bytes)
        data.image.image_info.width = info.width
        data.image.image_info.height = info.height
        data.image.image_info.format = info.format
    text = data.text.raw
    if len(text.encode("utf-8", "surrogatepass")) > conf.max_text_bytes():
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            f"data.text.raw is longer than {conf.max_text_bytes()} bytes",
            field="data.text.raw",
        )
    if "\x00" in text:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            "data.text.raw contains a NUL character",
            field="data.text.raw",
        )
    if data.text.url:
        _check_url(data.text.url, "data.text.url")
    if image_bytes is None and not image_url and not text and not data.text.url:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            "an input needs data.image (base64 bytes or url) or data.text",
            field="data",
        )
    if extra_metadata:
        try:
            data.metadata.update(extra_metadata)
        except (ValueError, TypeError) as exc:
            raise ApiError(
                SC.INPUT_INVALID_ARGUMENT,
                f"metadata cannot be stored: {exc}",
                field="data.metadata",
            ) from exc

    data.image.ClearField("base64")
    data.image.ClearField("url")
    data.text.ClearField("raw")
    if not data.image.ListFields():
        data.ClearField("image")
    if not data.text.ListFields():
        data.ClearField("text")
    data_json = to_dict(data, compact=True)
    encoded = json.dumps(data_json, ensure_ascii=False)
    if len(encoded.encode("utf-8", "surrogatepass")) > conf.max_data_bytes():
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            f"the input's data (without image and text) exceeds {conf.max_data_bytes()} bytes",
            field="data",
        )
    if "\\u0000" in encoded:
        # PostgreSQL jsonb refuses NUL; say so instead of failing on insert.
        raise ApiError(SC.INPUT_INVALID_ARGUMENT, "data contains a NUL character", field="data")

    if image_bytes is not None:
        content_hash = _sha256(image_bytes)
    elif image_url:
        content_hash = _sha256(image_url.encode("utf-8"))
    elif text:
        content_hash = _sha256(text.encode("utf-8", "surrogatepass"))
    else:
        content_hash = _sha256(encoded.encode("utf-8", "surrogatepass"))
    return _Prepared(
        public_id=public_id,
        data_json=data_json,
        text=text,
        image_bytes=image_bytes,
        image_url=image_url,
        content_hash=content_hash,
        annotations=list(annotations or []),
    )


def _duplicate(app, public_id: str) -> ApiError:
    return ApiError(
        SC.INPUT_DUPLICATE,
        f"Input '{public_id}' already exists in app '{app.public_id}'",
        field="id",
    )


def _save_blob(name: str, content: bytes) -> str:
    if default_storage.exists(name):
        return name  # content-addressed: the same bytes are already there
    return default_storage.save(name, ContentFile(content))


def _ensure_blob(name: str, content: bytes) -> None:
    # A concurrent delete of the last other input with the same bytes may have removed the blob
    # between our save and our commit; put it back.
    try:
        if not default_storage.exists(name):
            default_storage.save(name, ContentFile(content))
    except Exception:
        log.exception("could not re-check blob %s", name)


def _store(app, prepared: _Prepared) -> Input:
    if Input.objects.filter(app=app, public_id=prepared.public_id).exists():
        raise _duplicate(app, prepared.public_id)
    row = Input(
        app=app,
        public_id=prepared.public_id,
        data=prepared.data_json,
        image_url=prepared.image_url,
        text=prepared.text,
        annotations=prepared.annotations,
        content_hash=prepared.content_hash,
        status_code=SC.INPUT_SUCCESS,
    )
    content = prepared.image_bytes
    if content is not None:
        row.image.name = _save_blob(input_blob_path(row, ""), content)
    try:
        with transaction.atomic():
            row.save()
            if content is not None:
                name = row.image.name
                transaction.on_commit(lambda: _ensure_blob(name, content))
    except IntegrityError as exc:
        raise _duplicate(app, prepared.public_id) from exc
    return row


def input_create(
    *,
    app,
    input_pb: resources_pb2.Input,
    image_bytes: bytes | None = None,
    annotations: list[dict] | None = None,
    extra_metadata: dict | None = None,
) -> Input:
    """Store one input (own transaction); INPUT_DUPLICATE (30100) if the id exists; ApiError on bad data."""
    prepared = _prepare(input_pb, image_bytes, annotations, extra_metadata)
    return _store(app, prepared)


@dataclass
class NewInput:
    """One input for `inputs_create_bulk` (the same arguments as `input_create`)."""

    input_pb: resources_pb2.Input
    image_bytes: bytes | None = None
    annotations: list[dict] | None = None
    extra_metadata: dict | None = None


def inputs_create_bulk(
    *, app, items: list[NewInput], one_by_one_on_conflict: bool = True
) -> list[Input | ApiError]:
    """Store many inputs of `app` with one existence check and one INSERT, in the caller's
    transaction. One result per item, in order: the new Input, or an ApiError (INPUT_DUPLICATE
    when the id exists, the validation error, INTERNAL_SERVER_ISSUE when blob storage failed).

    If another transaction inserts one of the ids meanwhile, the batch is redone one input at a
    time (each in its own savepoint) with `one_by_one_on_conflict`; otherwise the IntegrityError
    propagates and the caller rolls back."""
    results: list[Input | ApiError | None] = [None] * len(items)
    prepared: list[tuple[int, _Prepared]] = []
    for i, item in enumerate(items):
        try:
            prepared.append(
                (
                    i,
                    _prepare(
                        item.input_pb, item.image_bytes, item.annotations, item.extra_metadata
                    ),
                )
            )
        except ApiError as exc:
            results[i] = exc
    existing = set(
        Input.objects.filter(app=app, public_id__in=[p.public_id for _, p in prepared]).values_list(
            "public_id", flat=True
        )
    )
    rows: list[tuple[int, Input, bytes | None]] = []
    for i, p in prepared:
        if p.public_id in existing:
            results[i] = _duplicate(app, p.public_id)
            continue
        row = Input(
            app=app,
            public_id=p.public_id,
            data=p.data_json,
            image_url=p.image_url,
            text=p.text,
            annotations=p.annotations,
            content_hash=p.content_hash,
            status_code=SC.INPUT_SUCCESS,
        )
        try:
            if p.image_bytes is not None:
                row.image.name = _save_blob(input_blob_path(row, ""), p.image_bytes)
        except OSError as exc:
            results[i] = ApiError(SC.INTERNAL_SERVER_ISSUE, f"blob storage: {exc}")
            continue
        rows.append((i, row, p.image_bytes))
    try:
        with transaction.atomic():
            Input.objects.bulk_create([row for _, row, _ in rows])
    except IntegrityError:
        if not one_by_one_on_conflict:
            raise
        for i, _row, _content in rows:
            item = items[i]
            try:
                results[i] = input_create(
                    app=app,
                    input_pb=item.input_pb,
                    image_bytes=item.image_bytes,
                    annotations=item.annotations,
                    extra_metadata=item.extra_metadata,
                )
            except ApiError as exc:
                results[i] = exc
        return results  # type: ignore[return-value]
    for i, row, content in rows:
        results[i] = row
        if content is not None:
            name = row.image.name
            transaction.on_commit(lambda name=name, content=content: _ensure_blob(name, content))
    return results  # type: ignore[return-value]


def _suffixed(public_id: str) -> str:
    return f"{public_id[:119]}-{secrets.token_hex(4)}"


def inputs_post(
    *, app, inputs: list[resources_pb2.Input], id_conflict_resolution: int = CONFLICT_NOT_SET
) -> list[Input | ApiError]:
    """Create each input on its own (partial success); per-input ApiError in the result list.

    id_conflict_resolution: NOT_SET -> INPUT_DUPLICATE, SKIP -> the existing input is returned
    unchanged, SUFFIX -> a random suffix is appended to the id. Raises for > 128 inputs.
    """
    limit = conf.max_inputs_per_request()
    if len(inputs) > limit:
        raise ApiError(
            SC.INPUT_INVALID_REQUEST,
            f"{len(inputs)} inputs in one request; at most {limit} are allowed",
            field="inputs",
        )
    if id_conflict_resolution not in (CONFLICT_NOT_SET, CONFLICT_SKIP, CONFLICT_SUFFIX):
        raise ApiError(
            SC.INPUT_INVALID_REQUEST,
            "unknown input_id_conflict_resolution",
            field="input_id_conflict_resolution",
        )
    results: list[Input | ApiError] = []
    for pb in inputs:
        try:
            results.append(_post_one(app, pb, id_conflict_resolution))
        except ApiError as exc:
            results.append(exc)
    return results


def _post_one(app, pb: resources_pb2.Input, resolution: int) -> Input:
    prepared = _prepare(pb, None, None, None)
    for _attempt in range(5):
        try:
            return _store(app, prepared)
        except ApiError as exc:
            if exc.code != SC.INPUT_DUPLICATE or not pb.id or resolution == CONFLICT_NOT_SET:
                raise
            if resolution == CONFLICT_SKIP:
                existing = Input.objects.filter(app=app, public_id=prepared.public_id).first()
                if existing is not None:
                    return existing
            else:
                prepared.public_id = _suffixed(pb.id)
    raise _duplicate(app, prepared.public_id)


def _purge_blobs(names: set[str]) -> None:
    """Delete blobs no input refers to any more (runs after commit; storage errors are logged)."""
    for name in names:
        try:
            if not Input.objects.filter(image=name).exists():
                default_storage.delete(name)
        except Exception:
            log.exception("could not delete blob %s", name)


def inputs_delete(*, app, ids: list[str]) -> int:
    """Delete the app's inputs with these ids, all or nothing (11101 naming any missing id)."""
    wanted = list(dict.fromkeys(i for i in ids if i))
    if not wanted:
        raise ApiError(SC.INPUT_INVALID_REQUEST, "ids must name at least one input", field="ids")
    limit = 1000
    if len(wanted) > limit:
        raise ApiError(SC.INPUT_INVALID_REQUEST, f"at most {limit} ids per request", field="ids")
    with transaction.atomic():
        rows = list(
            Input.objects.select_for_update()
            .filter(app=app, public_id__in=wanted)
            .values_list("pk", "public_id", "image")
        )
        missing = [i for i in wanted if i not in {r[1] for r in rows}]
        if missing:
            shown = ", ".join(f"'{m[:64]}'" for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            noun = "Input" if len(missing) == 1 else "Inputs"
            verb = "does" if len(missing) == 1 else "do"
            raise ApiError(SC.CONN_DOES_NOT_EXIST, f"{noun} {shown}{more} {verb} not exist")
        Input.objects.filter(pk__in=[r[0] for r in rows]).delete()
        blobs = {r[2] for r in rows if r[2]}
        if blobs:
            transaction.on_commit(lambda: _purge_blobs(blobs))
    return len(rows)


def input_delete(*, app, input_id: str) -> None:
    """Delete one input of the app (transactional); 11101 if it is not there."""
    if not input_id:
        raise ApiError(SC.INPUT_INVALID_REQUEST, "input_id is required", field="input_id")
    inputs_delete(app=app, ids=[input_id])


def app_blobs_purge_on_commit(*, app) -> None:
    """Call inside the transaction that deletes `app`: its image blobs go once that commits."""
    names = set(Input.objects.filter(app=app).exclude(image="").values_list("image", flat=True))
    if names:
        transaction.on_commit(lambda: _purge_blobs(names))
