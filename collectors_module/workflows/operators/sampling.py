"""`random-sample`: let through about `keep_fraction` of the inputs, deterministically per key.

The draw is the first 8 bytes of sha256("<seed>|<seed_key>") read as a number in [0, 1); the
input is kept when draw < keep_fraction. So keep_fraction 0 keeps nothing, 1 keeps everything,
and the same capture (same seed_key) always gets the same decision, even when it is retried.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from clarifai_grpc.grpc.api import resources_pb2

from ._params import number, string

_SCALE = float(1 << 64)


@dataclass(frozen=True)
class Config:
    keep_fraction: float
    seed: str = ""


def parse(params: dict, concepts: list | None = None) -> Config:
    return Config(
        keep_fraction=number(params, "keep_fraction", None, 0.0, 1.0),
        seed=string(params, "seed", ""),
    )


def draw(seed: str, seed_key: str) -> float:
    """A number in [0, 1) that depends only on (seed, seed_key)."""
    digest = hashlib.sha256(f"{seed}|{seed_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def fallback_key(data: resources_pb2.Data) -> str:
    """A stable key for an input that came without one: a digest of its content."""
    return hashlib.sha256(data.SerializeToString(deterministic=True)).hexdigest()


def keeps(config: Config, seed_key: str) -> bool:
    if config.keep_fraction >= 1.0:
        return True
    if config.keep_fraction <= 0.0:
        return False
    return draw(config.seed, seed_key) < config.keep_fraction


def apply(data: resources_pb2.Data, config: Config, *, seed_key: str = "") -> resources_pb2.Data:
    """The input itself when kept, an empty Data when dropped."""
    key = seed_key or fallback_key(data)
    return data if keeps(config, key) else resources_pb2.Data()
