"""Input rows -> protobuf `Input` messages (data restored, image as a hosted URL)."""

from __future__ import annotations

import logging
from urllib.parse import quote

from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import json_format

from collectors_module.core.errors import make_status

from . import conf
from .models import Input

log = logging.getLogger("collectors.inputs")


def media_url(row: Input) -> str:
    """Where the web module serves the stored image bytes of this input."""
    return (
        f"{conf.public_base_url()}/apps/{quote(row.app.public_id, safe='')}"
        f"/inputs/{quote(row.public_id, safe='')}/media"
    )


def input_data_to_pb(row: Input) -> resources_pb2.Data:
    """The stored `Data` (concepts, regions, metadata, text) with the image as a URL."""
    data = resources_pb2.Data()
    try:
        json_format.ParseDict(row.data or {}, data, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError):
        log.warning("input %s has unreadable stored data", row.pk)
    if row.text:
        data.text.raw = row.text
    if row.image:
        data.image.url = media_url(row)
    elif row.image_url:
        data.image.url = row.image_url
    return data


def input_to_pb(input: Input) -> resources_pb2.Input:
    pb = resources_pb2.Input(id=input.public_id)
    pb.data.CopyFrom(input_data_to_pb(input))
    pb.created_at.FromDatetime(input.created_at)
    if input.modified_at is not None:
        pb.modified_at.FromDatetime(input.modified_at)
    pb.status.CopyFrom(make_status(input.status_code))
    return pb
