"""The runner interface: plain protobuf `Data` in, `Data` (or a per-input error) out. No ORM.

The predict service has already decoded, fetched (through the SSRF-safe fetcher) and validated
every image before a runner sees it, so `data.image.base64` always holds the raw bytes and a
runner never opens a URL itself (remote runners talk only to their allow-listed endpoint).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.errors import ApiError

Result = resources_pb2.Data | ApiError


class Runner(ABC):
    """Loaded once per process (see registry.get_runner) and called from many threads."""

    #: the Clarifai model type this runner produces outputs for, e.g. "visual-classifier"
    model_type_id: str = ""

    def __init__(self, config: dict[str, Any] | None = None):
        self.config = dict(config or {})

    @abstractmethod
    def predict(self, inputs: list[resources_pb2.Data], params: dict[str, Any]) -> list[Result]:
        """One result per input, in order: a `Data` with the outputs, or an ApiError for that input."""
