"""Read the Python code blocks of the product page at test time (they are not copied here).

The page's text lost its indentation, so the bodies of `if`/`for` headers are re-indented;
then only the `NAME = 'YOUR_..._HERE'` placeholders are replaced. Nothing else is edited.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SEED_DOC_CANDIDATES = (
    ROOT.parent / "shared" / "reference" / "collectors-seed-doc.txt",
    ROOT / "shared" / "reference" / "collectors-seed-doc.txt",
)
HEADINGS = ("Update Collector", "List Collectors", "Get Collector", "Delete Collector")
_PLACEHOLDER = re.compile(r"^(?P<name>[A-Z0-9_]+) = '(?:YOUR_[A-Z0-9_]+_HERE)'", re.M)


def seed_doc() -> Path | None:
    return next((p for p in SEED_DOC_CANDIDATES if p.is_file()), None)


def _reindent(lines: list[str]) -> list[str]:
    out, indent_next = [], False
    for line in lines:
        if not line.strip():
            indent_next = False
            out.append(line)
            continue
        if indent_next and not line.startswith(" "):
            out.append("    " + line)
            continue
        out.append(line)
        if re.match(r"^(if|for|while|with)\b.*:\s*$", line):
            indent_next = True
    return out


def code_blocks(text: str) -> list[str]:
    """The five blocks in page order: add, update, list, get, delete."""
    lines = text.splitlines()
    blocks: list[str] = []
    i = 0
    while i < len(lines):
        if (
            lines[i].startswith("#" * 20)
            and i + 1 < len(lines)
            and lines[i + 1].startswith("# In this section")
        ):
            j = i
            while j < len(lines) and lines[j].strip() not in HEADINGS:
                j += 1
            block = lines[i:j]
            while block and not block[-1].strip():
                block.pop()
            blocks.append("\n".join(_reindent(block)) + "\n")
            i = j
        else:
            i += 1
    return blocks


def fill(block: str, values: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in values:
            raise KeyError(f"no value for placeholder {name}")
        return f"{name} = {values[name]!r}"

    return _PLACEHOLDER.sub(sub, block)
