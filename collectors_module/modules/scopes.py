"""Plain-language descriptions of the scopes a module asks for (shown on the Authorize page)."""

from __future__ import annotations

SCOPE_TEXT = {
    "All": "Everything your account can do",
    "Apps:Get": "See your apps",
    "Annotations:Add": "Add annotations to inputs",
    "Annotations:Get": "Read annotations",
    "Concepts:Get": "Read concepts",
    "Inputs:Add": "Add inputs to your apps",
    "Inputs:Get": "Read inputs",
    "Models:Get": "Read models, including the source model of a collector",
    "Predict": "Run predictions with models",
    "Workflows:Get": "Read workflows (the pre-queue and post-queue dropdowns)",
    "Collectors:Add": "Create and update collectors",
    "Collectors:Get": "List collectors and their counters",
    "Collectors:Delete": "Delete collectors",
    "Keys:Get": "List your keys (for the Post Inputs Key picker)",
}


def describe_scopes(scopes) -> list[tuple[str, str]]:
    return [(s, SCOPE_TEXT.get(s, "")) for s in scopes]
