"""Near-duplicate suppression (a collector option): in the worker only, never on the predict path.

Before the post-queue workflow runs (so a duplicate costs no model run), the capture's content is
fingerprinted (core.fingerprints: exact hash, normalised text hash, image pHash) and looked up in
the destination app's fingerprints (inputs.services.find_duplicate: indexed lookups). A match ends
the capture `filtered` with the reason `near_duplicate` and the id of the input it matched.

Two duplicates claimed in the same batch are not in the app yet when they are decided: the batch
keeps the fingerprints of the captures it is about to ingest (`Batch`), and a later capture that
duplicates one of them is handed back (not counted as an attempt) once the batch has committed,
so its next pass finds the ingested input and ends `filtered` naming it. If the earlier one is not
ingested after all (a failed post), the later one is decided afresh and may be kept. Across
workers, the commit looks the fingerprint up once more under a per-app lock (worker.commit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.inputs.services import (
    Fingerprint,
    Match,
    compare,
    find_duplicate,
    fingerprint_of,
)

REASON = "near_duplicate"


def fingerprint(data: resources_pb2.Data, raw: bytes | None):
    """The fingerprint of a capture's content: its image bytes, else its text (None: neither)."""
    image = raw or data.image.base64
    if image:
        return fingerprint_of(image_bytes=bytes(image))
    if data.text.raw:
        return fingerprint_of(text=data.text.raw)
    return None


@dataclass
class Batch:
    """The fingerprints of the captures a worker batch is about to ingest, per destination app."""

    kept: list[tuple[int, Fingerprint, str]] = field(default_factory=list)

    def earlier(self, app_pk: int, f: Fingerprint, max_distance: int) -> str | None:
        """The id of a capture of this batch, to be ingested into the same app, that `f`
        duplicates."""
        for kept_app, other, capture_id in self.kept:
            if kept_app == app_pk and compare(f, other, max_distance=max_distance):
                return capture_id
        return None

    def keep(self, app_pk: int, f: Fingerprint | None, capture_id) -> None:
        if f is not None:
            self.kept.append((app_pk, f, str(capture_id)))


@dataclass
class Verdict:
    match: Match | None = None  # an input of the app: filter
    earlier: str | None = None  # a capture of this batch not ingested yet: hand back
    fingerprint: Fingerprint | None = None  # keep it in the batch if the capture is ingested
    max_distance: int = 0


def check(
    collector, data: resources_pb2.Data, raw: bytes | None, batch: Batch | None = None
) -> Verdict:
    """Does this capture duplicate an input of the collector's app, or a capture of this batch?
    (Option off: an empty verdict.)"""
    if not collector.near_duplicate:
        return Verdict()
    f = fingerprint(data, raw)
    if f is None:
        return Verdict()
    distance = collector.near_duplicate_max_distance
    match = find_duplicate(collector.app, f, max_distance=distance)
    if match is not None:
        return Verdict(match=match)
    earlier = batch.earlier(collector.app_id, f, distance) if batch is not None else None
    return Verdict(earlier=earlier, fingerprint=f, max_distance=distance)


def lookup(app, data: resources_pb2.Data, raw: bytes | None, max_distance: int) -> Match | None:
    """The input of `app` that this content duplicates (the near-duplicate operator's gate)."""
    f = fingerprint(data, raw)
    if f is None:
        return None
    return find_duplicate(app, f, max_distance=max_distance)


def reason(match: Match) -> str:
    how = f"pHash distance {match.distance}" if match.kind == "phash" else f"{match.kind} match"
    return f"{REASON}: matches input {match.input_id} ({how})"
