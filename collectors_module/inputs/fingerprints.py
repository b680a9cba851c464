"""Near-duplicate lookups over an app's inputs: fingerprints kept as inputs are created.

`record` is called by the inputs services right after inputs are inserted (same transaction);
`find_duplicate` answers "is there an input in this app whose content is the same or nearly the
same?" with indexed lookups only (see core.fingerprints for the band probing):
exact hash, then normalised text hash, then perceptual hash within `max_distance` bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q

from collectors_module.core import fingerprints as fp

from .models import Input, InputFingerprint

MAX_CANDIDATES = 2000  # band collisions read per lookup (a bound, not a scan)


@dataclass(frozen=True)
class Fingerprint:
    exact: str
    text: str = ""
    phash: int | None = None


@dataclass(frozen=True)
class Match:
    input_id: str  # the public id of the matched input
    kind: str  # exact, text or phash
    distance: int = 0


def fingerprint_of(
    *, image_bytes: bytes | None = None, text: str = "", exact: str = ""
) -> Fingerprint:
    """The fingerprint of content: image bytes (exact + pHash) or a text (exact + normalised)."""
    if image_bytes:
        return Fingerprint(exact=exact or fp.exact(image_bytes), phash=fp.phash(image_bytes))
    if text:
        return Fingerprint(
            exact=exact or fp.exact(text.encode("utf-8", "surrogatepass")), text=fp.text(text)
        )
    return Fingerprint(exact=exact)


def _row(row: Input, content: bytes | None) -> InputFingerprint:
    f = fingerprint_of(image_bytes=content, text=row.text, exact=row.content_hash)
    b = fp.bands(f.phash) if f.phash is not None else (None, None, None, None)
    return InputFingerprint(
        input_id=row.pk,
        app_id=row.app_id,
        exact=f.exact,
        text=f.text,
        phash=f.phash,
        band0=b[0],
        band1=b[1],
        band2=b[2],
        band3=b[3],
    )


def record(rows: list[tuple[Input, bytes | None]]) -> None:
    """Store the fingerprints of new inputs (their image bytes when they have some)."""
    if rows:
        InputFingerprint.objects.bulk_create([_row(r, c) for r, c in rows], ignore_conflicts=True)


def _phash_candidates(app_pk: int, phash: int, d: int) -> list[tuple[int, int]]:
    """(input pk, phash) of the app's fingerprints that may be within `d` bits: those sharing a
    band within d // 4 bits (see core.fingerprints). On PostgreSQL one UNION ALL of four
    index-only scans (each band index holds the phash), the distance measured in SQL; elsewhere
    (the SQLite quick start) the same band lookup through the ORM, measured here."""
    probes = [fp.probes(band, d // 4) for band in fp.bands(phash)]
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(InputFingerprint._meta.db_table)
        part = (
            f"SELECT input_id, phash FROM {table} WHERE app_id = %s AND band{{i}} = ANY(%s)"
            " AND bit_count((phash # %s)::bit(64)) <= %s"
        )
        sql = " UNION ALL ".join(part.format(i=i) for i in range(4)) + f" LIMIT {MAX_CANDIDATES}"
        params: list = []
        for values in probes:
            params += [app_pk, values, phash, d]
        with connection.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    cond = Q()
    for i, values in enumerate(probes):
        cond |= Q(**{f"band{i}__in": values})
    qs = InputFingerprint.objects.filter(cond, app_id=app_pk, phash__isnull=False)
    return list(qs.values_list("input_id", "phash")[:MAX_CANDIDATES])


def _first(qs) -> str | None:
    """The public id of one matching input (no ORDER BY: any match will do, and sorting would
    let the planner walk the primary key instead of the hash index)."""
    hits = list(qs.values_list("input__public_id", flat=True)[:1])
    return hits[0] if hits else None


def compare(a: Fingerprint, b: Fingerprint, *, max_distance: int = 4) -> tuple[str, int] | None:
    """How `a` duplicates `b` ((kind, distance) as `find_duplicate` would judge it), or None."""
    if a.exact and a.exact == b.exact:
        return ("exact", 0)
    if a.text and a.text == b.text:
        return ("text", 0)
    if a.phash is not None and b.phash is not None:
        d = max(0, min(int(max_distance), fp.MAX_DISTANCE))
        dist = fp.distance(a.phash, b.phash)
        if dist <= d:
            return ("phash", dist)
    return None


def find_duplicate(
    app, f: Fingerprint, *, max_distance: int = 4, use_phash: bool = True
) -> Match | None:
    """The input of `app` this content duplicates (exact, normalised text, or pHash within
    `max_distance` bits, 0..core.fingerprints.MAX_DISTANCE), or None."""
    same_app = InputFingerprint.objects.filter(app_id=app.pk)
    if f.exact:
        hit = _first(same_app.filter(exact=f.exact))
        if hit:
            return Match(hit, "exact")
    if f.text:
        hit = _first(same_app.filter(text=f.text).exclude(text=""))
        if hit:
            return Match(hit, "text")
    if use_phash and f.phash is not None:
        d = max(0, min(int(max_distance), fp.MAX_DISTANCE))
        rows = _phash_candidates(app.pk, f.phash, d)
        best: tuple[int, int] | None = None
        for input_pk, other in rows:
            dist = fp.distance(f.phash, other)
            if dist <= d and (best is None or dist < best[0]):
                best = (dist, input_pk)
        if best is not None:
            public_id = Input.objects.filter(pk=best[1]).values_list("public_id", flat=True).first()
            if public_id:
                return Match(public_id, "phash", best[0])
    return None


__all__ = ["Fingerprint", "Match", "compare", "find_duplicate", "fingerprint_of", "record"]
