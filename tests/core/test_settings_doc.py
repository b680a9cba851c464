"""Every setting read from the environment is documented in docs/settings.md, and no module
outside settings.py reads the environment or mentions the test runner."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "collectors_module"
ENV_READ = re.compile(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]+)["']""")


def _documented() -> set[str]:
    text = (ROOT / "docs" / "settings.md").read_text()
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_<>]+)`", text, flags=re.M))


def test_every_setting_read_from_the_environment_is_in_the_table():
    read = set(ENV_READ.findall((PACKAGE / "settings.py").read_text())) - {"NAME"}
    assert len(read) > 80  # the pattern still matches how settings.py reads
    missing = sorted(read - _documented())
    assert not missing, f"add these to docs/settings.md: {missing}"


def test_the_table_lists_no_setting_that_does_not_exist():
    source = (PACKAGE / "settings.py").read_text()
    stale = sorted(n for n in _documented() if n.split("<")[0] not in source)
    assert not stale, f"docs/settings.md lists settings that settings.py no longer has: {stale}"


def _production_modules():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "settings.py" or path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        yield path, path.read_text()


def test_only_settings_py_reads_the_environment():
    readers = []
    for path, text in _production_modules():
        for line in text.splitlines():
            if re.search(
                r"os\.getenv|os\.environ(?!\.setdefault\(\"DJANGO_SETTINGS_MODULE\")", line
            ):
                readers.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert not readers, readers


def test_no_production_module_mentions_pytest():
    mentions = [
        str(path.relative_to(ROOT)) for path, text in _production_modules() if "pytest" in text
    ]
    assert not mentions, mentions
