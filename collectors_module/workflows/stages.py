"""How a workflow behaves as a collector's pre- or post-queue workflow (for the collector form).

- `pre_queue_mode`: "inline" (operators only: decided on the model's output at admission; a
  near-duplicate node excepted, it needs the worker),
  "inline-with-source" (reads a model, then operators: inline when that model is the collector's
  source, else in the worker), "worker" (runs other models: decided by the worker).
- `post_queue_problem`: why a workflow can NEVER produce a non-empty output as a post-queue
  workflow (then every capture ends `filtered`, "post-queue output empty"), or "". A post-queue
  workflow runs on the ORIGINAL input (an image or a text, no concepts): an operator that reads
  concepts and takes the workflow input directly has nothing to keep; a random sample with
  keep_fraction 0 keeps nothing; a thresholder keeping only listed concepts with none listed keeps
  nothing; a node whose every parent can never output cannot either. Model nodes (and the
  source model, reused from the capture) can.
"""

from __future__ import annotations

from .executor import get_plan
from .model_types import get_model_type

_PASS_THROUGH = frozenset({"metadata-filter", "class-quota", "random-sample"})


def pre_queue_mode(workflow) -> str:
    plan = get_plan(workflow)
    if any(n.duplicate for n in plan.nodes):
        return "worker"  # a near-duplicate lookup reads the database: never on the predict path
    models = plan.model_nodes
    if not models:
        return "inline"
    if len({n.model_version_pk for n in models}) == 1 and all(not n.parents for n in models):
        return "inline-with-source"
    return "worker"


def _operator_never_outputs(node, reads_input: bool) -> str:
    type_id = node.model_type_id
    config = getattr(node.operator, "config", None)
    if type_id == "random-sample" and config is not None and config.keep_fraction <= 0:
        return f"node {node.node_id} samples keep_fraction 0"
    if (
        type_id == "concept-thresholder"
        and config is not None
        and config.filter_other_concepts
        and not config.thresholds
    ):
        return f"node {node.node_id} keeps only listed concepts and lists none"
    spec = get_model_type(type_id)
    reads_concepts = spec is not None and "concepts" in spec.input_fields
    if reads_input and reads_concepts and type_id not in _PASS_THROUGH:
        return (
            f"node {node.node_id} ({type_id}) reads the original input, which has no concepts "
            "after the queue"
        )
    return ""


def post_queue_problem(workflow) -> str:
    plan = get_plan(workflow)
    can: dict[int, bool] = {}
    why: dict[int, str] = {}
    for i in plan.order:
        node = plan.nodes[i]
        parents_can = any(can[p] for p in node.parents) if node.parents else True
        if not parents_can:
            can[i], why[i] = False, why[next(iter(node.parents))]
            continue
        if node.operator is None:
            can[i] = True
            continue
        problem = _operator_never_outputs(node, reads_input=not node.parents)
        can[i], why[i] = not problem, problem
    if any(can[t] for t in plan.terminals):
        return ""
    reasons = sorted({why[t] for t in plan.terminals if why.get(t)})
    return "; ".join(reasons) or "no node can produce an output"


__all__ = ["post_queue_problem", "pre_queue_mode"]
