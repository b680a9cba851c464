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
)

for _family in FAMILIES:
    try:
        import_module(f"{__name__}.{_family}")
    except ModuleNotFoundError as exc:  # a family not written yet answers NOT_IMPLEMENTED
        if exc.name != f"{__name__}.{_family}":
            raise
