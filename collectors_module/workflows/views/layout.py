"""The SVG drawing of a workflow: an 'Input' box, then one column of boxes per graph depth."""

from __future__ import annotations

from collectors_module.core.errors import ApiError

from .. import executor
from ..model_types import get_model_type
from .draft import Editor

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 168, 52, 56, 18, 12


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _depths(nodes: list[dict]) -> dict[str, int]:
    ids = [n["id"] for n in nodes]
    parents = {n["id"]: [p for p in n["inputs"] if p in ids] for n in nodes}
    try:
        order = executor.topological_order(ids, parents)
    except ValueError:
        order = ids
    depth: dict[str, int] = {}
    for nid in order:
        ps = [depth.get(p, 0) for p in parents[nid]]
        depth[nid] = 1 + max(ps) if ps else 0
    return depth


def graph(ed: Editor) -> dict:
    """Boxes and arrows of the workflow, sized for the template's <svg>."""
    nodes = ed.nodes
    if ed.saved is not None and not ed.dirty:
        try:
            depths = executor.node_depths(ed.saved)
        except (ApiError, ValueError):
            depths = _depths(nodes)
    else:
        depths = _depths(nodes)
    columns: dict[int, list[dict]] = {}
    for n in nodes:
        columns.setdefault(depths.get(n["id"], 0) + 1, []).append(n)
    rows = max([len(c) for c in columns.values()] + [1])
    height = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y
    pos: dict[str, tuple[int, int]] = {}
    boxes = []
    in_y = PAD + (rows - 1) * (BOX_H + GAP_Y) // 2
    pos["__input__"] = (PAD, in_y)
    boxes.append(
        {"x": PAD, "y": in_y, "title": "Input", "sub": "image or text", "input": True, "id": ""}
    )
    for col, members in sorted(columns.items()):
        x = PAD + col * (BOX_W + GAP_X)
        offset = (rows - len(members)) * (BOX_H + GAP_Y) // 2
        for r, n in enumerate(members):
            y = PAD + offset + r * (BOX_H + GAP_Y)
            pos[n["id"]] = (x, y)
            spec = get_model_type(n["type"])
            boxes.append(
                {
                    "x": x,
                    "y": y,
                    "id": n["id"],
                    "title": _clip(n["id"], 22),
                    "sub": _clip(spec.title if spec else n["type"], 26),
                    "tooltip": f"{n['id']}: {n['label']} ({n['type']})",
                    "error": n["id"] in ed.node_errors,
                    "operator": bool(spec and spec.operator),
                }
            )
    edges = []
    for n in nodes:
        x2, y2 = pos[n["id"]]
        sources = [p for p in n["inputs"] if p in pos] or ["__input__"]
        for p in sources:
            x1, y1 = pos[p]
            sx, sy = x1 + BOX_W, y1 + BOX_H // 2
            tx, ty = x2 - 4, y2 + BOX_H // 2
            mid = (sx + tx) // 2
            edges.append(f"M{sx},{sy} C{mid},{sy} {mid},{ty} {tx},{ty}")
    width = PAD * 2 + (max(columns, default=0) + 1) * BOX_W + max(columns, default=0) * GAP_X
    return {
        "width": width,
        "height": height,
        "boxes": boxes,
        "edges": edges,
        "box_w": BOX_W,
        "box_h": BOX_H,
        "text_x": 10,
    }
