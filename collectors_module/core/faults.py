"""Deterministic crash points for fault tests: inert unless the COLLECTORS_FAULTS setting names them.

COLLECTORS_FAULTS="after_claim:kill,after_remote_post:raise" makes `fault_point("after_claim")`
SIGKILL its own process and `fault_point("after_remote_post")` raise. A `:sleep` action sleeps
COLLECTORS_FAULT_SLEEP seconds (default 5). An optional `@N` suffix fires only on the Nth hit.
An optional `%P` suffix fires on each hit with probability P percent (`after_enrich:raise%5`);
with COLLECTORS_FAULTS_SEED set, the draw for the Nth hit of a point depends only on the seed,
the point and N, so a run reproduces. A point may carry several rules
(`after_enrich:sleep,after_enrich:raise%5`): they apply in the order given.
"""

from __future__ import annotations

import os
import random
import signal
import time

from django.conf import settings

_hits: dict[str, int] = {}


class InjectedFault(RuntimeError):
    pass


def _parse_all(spec: str) -> dict[str, list[tuple[str, int, float]]]:
    """{point: [(action, nth, probability percent), ...]} (nth 0 = every hit, pct 100 = always)."""
    rules: dict[str, list[tuple[str, int, float]]] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item or ":" not in item:
            continue
        name, action = item.split(":", 1)
        nth, pct = 0, 100.0
        if "%" in action:
            action, pct_s = action.split("%", 1)
            try:
                pct = float(pct_s or 100)
            except ValueError:
                continue
        if "@" in action:
            action, nth_s = action.split("@", 1)
            try:
                nth = int(nth_s or 0)
            except ValueError:
                continue
        rules.setdefault(name.strip(), []).append((action.strip(), nth, pct))
    return rules


def _parse(spec: str) -> dict[str, tuple[str, int]]:
    """The last rule of each point as (action, nth) (kept for callers of the old format)."""
    return {name: (r[-1][0], r[-1][1]) for name, r in _parse_all(spec).items()}


def _draw(name: str, hit: int) -> float:
    seed = settings.COLLECTORS_FAULTS_SEED
    if seed is None or seed == "":
        return random.random() * 100
    return random.Random(f"{seed}:{name}:{hit}").random() * 100


def fault_point(name: str) -> None:
    spec = settings.COLLECTORS_FAULTS
    if not spec:
        return
    rules = _parse_all(spec).get(name)
    if not rules:
        return
    _hits[name] = _hits.get(name, 0) + 1
    hit = _hits[name]
    for action, nth, pct in rules:
        if nth and hit != nth:
            continue
        if pct < 100 and _draw(name, hit) >= pct:
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "raise":
            raise InjectedFault(name)
        elif action == "sleep":
            time.sleep(float(settings.COLLECTORS_FAULT_SLEEP))
