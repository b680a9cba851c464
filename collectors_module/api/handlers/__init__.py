"""Importing this package registers every RPC handler (one module per resource family)."""

from importlib import import_module

FAMILIES = (
    "users",
    "apps",
    "keys",
    "inputs",
    "annotations",
    "models",
    "predict",
    "workflows",
    "concepts",
    "collectors",
    "collector_ext",
    "datasets",
    "consent",
)

for _family in FAMILIES:
    import_module(f"{__name__}.{_family}")
