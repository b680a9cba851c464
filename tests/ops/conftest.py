"""Fixtures of the ops tests."""

from tests.ops.stack import stack  # noqa: F401 - the fixture
