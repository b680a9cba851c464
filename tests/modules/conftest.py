"""The module pages need the seeded catalogue entry even after a transactional test flushed it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _module_catalogue(request):
    if "db" in request.fixturenames or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("collector_module")
