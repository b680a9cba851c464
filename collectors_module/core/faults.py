"""Deterministic crash points for fault tests: inert unless COLLECTORS_FAULTS names them.

COLLECTORS_FAULTS="after_claim:kill,after_remote_post:raise" makes `fault_point("after_claim")`
SIGKILL its own process and `fault_point("after_remote_post")` raise. A `:sleep` action sleeps
COLLECTORS_FAULT_SLEEP seconds (default 5). An optional `@N` suffix fires only on the Nth hit.
"""

from __future__ import annotations

import os
import signal
import time

_hits: dict[str, int] = {}


class InjectedFault(RuntimeError):
    pass


def _parse(spec: str) -> dict[str, tuple[str, int]]:
    rules: dict[str, tuple[str, int]] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item or ":" not in item:
            continue
        name, action = item.split(":", 1)
        nth = 0
        if "@" in action:
            action, nth_s = action.split("@", 1)
            nth = int(nth_s or 0)
        rules[name.strip()] = (action.strip(), nth)
    return rules


def fault_point(name: str) -> None:
    spec = os.environ.get("COLLECTORS_FAULTS")
    if not spec:
        return
    rule = _parse(spec).get(name)
    if rule is None:
        return
    action, nth = rule
    _hits[name] = _hits.get(name, 0) + 1
    if nth and _hits[name] != nth:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise InjectedFault(name)
    elif action == "sleep":
        time.sleep(float(os.environ.get("COLLECTORS_FAULT_SLEEP", "5")))
