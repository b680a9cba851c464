"""Moved to `collectors_module.api.descriptors`; this name stays only for the capture engine.

The capture engine is being moved to its own app on another branch; when that lands, its one
import of `core.descriptors` switches to `api.descriptors` and this module goes.
"""

from collectors_module.api.descriptors import get_rpc

__all__ = ["get_rpc"]
