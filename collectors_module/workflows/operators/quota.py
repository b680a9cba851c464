"""`class-quota`: at most N captures per concept per hour or per day (class-balanced sampling).

The operator itself is pure: it names the concepts an input counts under (`counted`): its top
concept (`per = top`), or every concept whose value is at least `threshold` (`per = above`);
concepts of its regions when it has none of its own. Counting is the caller's: a collector's
admission (inline pre-queue workflow) or worker (post-queue workflow) passes the executor a quota
gate (`capture.quotas`) that counts in Redis, shared by every process, and says which concept
is full. An input is kept while ANY of its counted concepts has room (it is counted in those that
have room) and dropped with `class_quota:<concept>` when all of them are full. Run without a gate
(PostWorkflowResults, the builder's "try it"), the operator lets every input with a counted
concept through: quotas only exist for collectors. An input without concepts passes (it counts
under no class).
"""

from __future__ import annotations

from dataclasses import dataclass

from clarifai_grpc.grpc.api import resources_pb2

from ._params import invalid, number

WINDOWS = {"hour": 3600, "day": 86400}
PER = ("top", "above")
MAX_PER_WINDOW = 1_000_000


@dataclass(frozen=True)
class Config:
    max_per_window: int
    window: str = "hour"
    per: str = "top"
    threshold: float = 0.5

    @property
    def window_seconds(self) -> int:
        return WINDOWS[self.window]


def parse(params: dict, concepts: list | None = None) -> Config:
    n = number(params, "max_per_window", None, 1, MAX_PER_WINDOW)
    if not float(n).is_integer():
        raise invalid("max_per_window", "max_per_window must be a whole number")
    window = str(params.get("window", "hour") or "hour").strip().lower()
    if window not in WINDOWS:
        raise invalid("window", f"window must be hour or day, got {window[:40]!r}")
    per = str(params.get("per", "top") or "top").strip().lower()
    if per not in PER:
        raise invalid("per", f"per must be top or above, got {per[:40]!r}")
    return Config(int(n), window, per, number(params, "threshold", 0.5, 0.0, 1.0))


def counted(data: resources_pb2.Data, config: Config) -> list[str]:
    """The concept ids (or names) `data` counts under, highest value first (at most 20)."""
    concepts = list(data.concepts) or [c for r in data.regions for c in r.data.concepts]
    if not concepts:
        return []
    concepts.sort(key=lambda c: -c.value)
    if config.per == "top":
        return [concepts[0].id or concepts[0].name]
    out: list[str] = []
    for c in concepts:
        key = c.id or c.name
        if c.value >= config.threshold and key not in out:
            out.append(key)
    return out[:20]


def apply(data: resources_pb2.Data, config: Config, *, seed_key: str = "") -> resources_pb2.Data:
    """Pass-through: the counting is done by the gate the executor is given (see module doc)."""
    return data
