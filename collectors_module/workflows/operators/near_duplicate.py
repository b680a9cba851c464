"""`near-duplicate`: drop an input whose content is already in the collector's destination app.

Pure like every operator: it only carries `max_distance` (pHash bits, 0 to 11). The lookup is
the caller's: the capture worker's gate (`capture.quotas.Gate.duplicate`, through
`capture.near_duplicates`) compares the WORKFLOW INPUT (the captured image or text) with the
fingerprints of the destination app's inputs and drops it as `near_duplicate: matches input <id>`.
A workflow holding this node is never run inline at admission (the lookup reads the database:
never on the predict path). Without a gate (PostWorkflowResults, "Try it") inputs pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.fingerprints import MAX_DISTANCE

from ._params import invalid, number


@dataclass(frozen=True)
class Config:
    max_distance: int = 4


def parse(params: dict, concepts: list | None = None) -> Config:
    value = number(params, "max_distance", 4, 0, MAX_DISTANCE)
    if not float(value).is_integer():
        raise invalid("max_distance", "max_distance must be a whole number")
    return Config(int(value))


def apply(data: resources_pb2.Data, config: Config, *, seed_key: str = "") -> resources_pb2.Data:
    """Pass-through: the lookup is done by the gate the executor is given (see module doc)."""
    return data
