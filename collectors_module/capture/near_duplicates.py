"""Near-duplicate suppression (a collector option): in the worker only, never on the predict path.

Before the post-queue workflow runs (so a duplicate costs no model run), the capture's content is
fingerprinted (core.fingerprints: exact hash, normalised text hash, image pHash) and looked up in
the destination app's fingerprints (inputs.services.find_duplicate: indexed lookups). A match ends
the capture `filtered` with the reason `near_duplicate` and the id of the input it matched.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.inputs.services import Match, find_duplicate, fingerprint_of

REASON = "near_duplicate"


def fingerprint(data: resources_pb2.Data, raw: bytes | None):
    """The fingerprint of a capture's content: its image bytes, else its text (None: neither)."""
    image = raw or data.image.base64
    if image:
        return fingerprint_of(image_bytes=bytes(image))
    if data.text.raw:
        return fingerprint_of(text=data.text.raw)
    return None


def check(collector, data: resources_pb2.Data, raw: bytes | None) -> Match | None:
    """The input of the collector's app this capture duplicates, or None (option off: None)."""
    if not collector.near_duplicate:
        return None
    return lookup(collector.app, data, raw, collector.near_duplicate_max_distance)


def lookup(app, data: resources_pb2.Data, raw: bytes | None, max_distance: int) -> Match | None:
    """The input of `app` that this content duplicates (the near-duplicate operator's gate)."""
    f = fingerprint(data, raw)
    if f is None:
        return None
    return find_duplicate(app, f, max_distance=max_distance)


def reason(match: Match) -> str:
    how = f"pHash distance {match.distance}" if match.kind == "phash" else f"{match.kind} match"
    return f"{REASON}: matches input {match.input_id} ({how})"
