"""Imports inside functions stay only where they are needed (a real import cycle, Django's app
registry, a heavy library loaded on first use), and each says why in a comment just above it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "collectors_module"


def unexplained_local_imports() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts or path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        seen: set[int] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for sub in ast.walk(node):
                if not isinstance(sub, ast.Import | ast.ImportFrom) or sub.lineno in seen:
                    continue
                seen.add(sub.lineno)
                if "#" in lines[sub.lineno - 1]:
                    continue
                # Walk up over the imports (and blank lines) of the same group to its first line.
                i = sub.lineno - 2
                while i >= 0 and (
                    not lines[i].strip()
                    or lines[i].lstrip().startswith(("import ", "from "))
                    or lines[i].strip() in (")",)
                    or (lines[i].startswith(" " * 8) and lines[i].strip().endswith(","))
                ):
                    i -= 1
                if i < 0 or not lines[i].lstrip().startswith("#"):
                    rel = path.relative_to(ROOT)
                    found.append(f"{rel}:{sub.lineno}: {lines[sub.lineno - 1].strip()}")
    return found


def test_every_import_inside_a_function_says_why():
    found = unexplained_local_imports()
    assert not found, "hoist these to the module or say why in a comment above:\n" + "\n".join(
        found
    )
