"""Fixtures and helpers shared by several test folders (loaded by tests/conftest.py)."""
