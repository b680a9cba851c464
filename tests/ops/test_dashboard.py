"""The Grafana dashboard and the deployment page name only metrics that exist."""

from __future__ import annotations

import json
import re

from prometheus_client import REGISTRY

from collectors_module.core import metrics  # noqa: F401 - registers the metrics
from collectors_module.ops.metrics import CaptureTableCollector
from tests.support.capture import ROOT


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("collectors_"):
            names.add(family.name + ("_total" if family.type == "counter" else ""))
            names.update(s.name for s in family.samples)
            if family.type == "histogram":
                names.update(f"{family.name}_{x}" for x in ("bucket", "sum", "count"))
    for family in CaptureTableCollector().collect():
        names.add(family.name + ("_info" if family.type == "info" else ""))
    return names


def test_dashboard_queries_only_exported_metrics():
    dash = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"collectors_[a-z_]+", e)}
    assert used, "the dashboard queries nothing"
    assert used - exported_names() == set()
    assert len(dash["panels"]) >= 10


def test_deployment_page_lists_every_metric():
    page = (ROOT / "docs" / "deployment.md").read_text()
    for name in exported_names():
        base = re.sub(r"_(bucket|sum|count|created)$", "", name)
        if base.startswith("collectors_sweeper_"):
            continue  # listed together on one row
        assert base in page or base.removesuffix("_total") in page, base
