#!/usr/bin/env python
"""Near-duplicate lookup cost in the worker: `inputs.services.find_duplicate` with N fingerprints
in the destination app.

    .venv/bin/python scripts/bench_near_duplicates.py [--rows 1000000] [-n 2000]

Uses DATABASE_URL (default: the `collectors_bench` PostgreSQL database, migrated). The first run
fills an app `bench-dedup/near-dups` with N inputs and their fingerprints by COPY (random 64-bit
pHashes, random exact and text hashes; about a minute for a million); later runs reuse them
(`--rebuild` starts again). Then it times lookups, scenarios interleaved in a random order per
round: a pHash a few bits away from a stored one (found) at max_distance 3 (one probe per band)
and 4 (17 per band), a hash with no neighbour (not found) at 3 and 4, an exact-hash hit, and an
A/A control (the max_distance 4 miss twice). Prints p50 / p99 / mean per lookup in milliseconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid

import benchlib

APP_ID = "near-dups"
USER_ID = "bench-dedup"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("-n", type=int, default=2000, help="lookups per scenario")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    env = benchlib.bench_env()
    benchlib.ensure_database(env)
    benchlib.setup_django(env)

    from django.db import connection

    from collectors_module.accounts.models import User
    from collectors_module.accounts.services import user_create
    from collectors_module.applications.models import App
    from collectors_module.applications.services import app_create
    from collectors_module.core import fingerprints as fp
    from collectors_module.inputs.models import Input, InputFingerprint
    from collectors_module.inputs.services import Fingerprint, find_duplicate

    user = User.objects.filter(username=USER_ID).first()
    if user is None:
        user, _ = user_create(user_id=USER_ID, password="bench-pw-123456", plan="enterprise")
    app = App.objects.filter(owner=user, public_id=APP_ID).first()
    if app is not None and args.rebuild:
        app.delete()
        app = None
    if app is None:
        app = app_create(owner=user, app_id=APP_ID)
    rng = random.Random(18)
    have = InputFingerprint.objects.filter(app_id=app.pk).count()
    if have < args.rows:
        started = time.monotonic()
        _fill(connection, app.pk, args.rows - have, rng, Input, InputFingerprint, fp)
        with connection.cursor() as cur:
            cur.execute(f"ANALYZE {InputFingerprint._meta.db_table}")
        print(f"filled {args.rows - have} fingerprints in {time.monotonic() - started:.0f} s")
    total = InputFingerprint.objects.filter(app_id=app.pk).count()
    stored = list(
        InputFingerprint.objects.filter(app_id=app.pk)
        .order_by("?")
        .values_list("phash", "exact")[:500]
    )

    def near(h: int, bits: int) -> int:
        u = fp.to_unsigned(h)
        for b in rng.sample(range(64), bits):
            u ^= 1 << b
        return fp.to_signed(u)

    def scenario(kind: str, distance: int):
        def run():
            h, exact = rng.choice(stored)
            if kind == "found":
                f = Fingerprint(exact="no-such-hash", phash=near(h, min(distance, 3)))
            elif kind == "exact":
                f = Fingerprint(exact=exact, phash=h)
            else:
                f = Fingerprint(exact="no-such-hash", phash=fp.to_signed(rng.getrandbits(64)))
            t0 = time.perf_counter()
            match = find_duplicate(app, f, max_distance=distance)
            elapsed = time.perf_counter() - t0
            return elapsed, match is not None

        return run

    scenarios = {
        "near copy, max_distance 3": scenario("found", 3),
        "near copy, max_distance 4": scenario("found", 4),
        "no neighbour, max_distance 3": scenario("miss", 3),
        "no neighbour, max_distance 4": scenario("miss", 4),
        "exact hash": scenario("exact", 4),
        "no neighbour, max_distance 4 (A/A)": scenario("miss", 4),
    }
    rounds = 20
    per_round = max(1, args.n // rounds)
    times: dict[str, list[float]] = {k: [] for k in scenarios}
    found: dict[str, int] = dict.fromkeys(scenarios, 0)
    for run in scenarios.values():  # warm the caches and the connection
        for _ in range(20):
            run()
    for _ in range(rounds):
        order = list(scenarios)
        rng.shuffle(order)
        for label in order:
            for _ in range(per_round):
                elapsed, hit = scenarios[label]()
                times[label].append(elapsed * 1000)
                found[label] += hit
    print(f"find_duplicate with {total} fingerprints in the app ({connection.vendor})")
    for label in scenarios:
        ms = sorted(times[label])
        print(
            f"  {label:36s} p50 {ms[len(ms) // 2]:6.3f} ms  p99 {ms[int(len(ms) * 0.99)]:6.3f} ms  "
            f"mean {statistics.fmean(ms):6.3f} ms  found {found[label] / len(ms):.2f}"
        )


def _fill(connection, app_pk, n, rng, Input, InputFingerprint, fp) -> None:
    """COPY n inputs and their fingerprints (random hashes) into the app."""
    inputs = Input._meta.db_table
    prints = InputFingerprint._meta.db_table
    batch = 100_000
    with connection.cursor() as cur:
        raw = cur.connection  # psycopg 3
        for start in range(0, n, batch):
            count = min(batch, n - start)
            ids = [f"bench-{uuid.uuid4().hex}" for _ in range(count)]
            with raw.cursor() as c:
                with c.copy(
                    f"COPY {inputs} (app_id, public_id, data, image, image_url, text, annotations,"
                    " annotations_pending, content_hash, status_code, created_at, modified_at)"
                    " FROM STDIN"
                ) as copy:
                    for public_id in ids:
                        copy.write_row(
                            (app_pk, public_id, "{}", "", "", "", "[]", False,
                             f"{rng.getrandbits(256):064x}", 30000, "now", "now")
                        )  # fmt: skip
                c.execute(
                    f"SELECT id, content_hash FROM {inputs} WHERE app_id = %s AND public_id = ANY(%s)",
                    [app_pk, ids],
                )
                rows = c.fetchall()
                with c.copy(
                    f"COPY {prints} (input_id, app_id, exact, text, phash, band0, band1, band2,"
                    " band3) FROM STDIN"
                ) as copy:
                    for input_id, exact in rows:
                        h = fp.to_signed(rng.getrandbits(64))
                        copy.write_row((input_id, app_pk, exact, "", h, *fp.bands(h)))
            raw.commit()


if __name__ == "__main__":
    main()
