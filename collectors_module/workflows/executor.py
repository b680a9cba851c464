"""Running workflows: a graph of model versions and operators over a batch of inputs.

Semantics
- A node without `node_inputs` receives the workflow input; a node with `node_inputs` receives
  its parents' outputs. Several parents (fan-in) are merged: concepts by id (highest value),
  regions appended, distinct texts joined by a newline, the first image, metadata keys filled in.
  A parent whose output is empty (dropped or failed) contributes nothing; a node all of whose
  parents are empty is skipped and its output is empty.
- A model node whose input lacks media (no image, no text; e.g. it follows a thresholder on a
  classifier's concepts) gets the workflow input's image and text ("look back" to the input).
- A metadata filter whose input has no metadata reads the workflow input's metadata.
- Operators run through `operators.registry`; model nodes through
  `inference.services.run_model_version`, one batched call per node over all inputs.
- `precomputed` maps a ModelVersion pk to the Data already computed for it on this input (the
  captured source prediction): a node of that version that takes the workflow input is not run
  again (`NodeRun.reused`).
- `keep`: some terminal node (one no other node reads) has a non-empty output, "non-empty"
  meaning some field holds a non-default value (`core.content.has_content`, the product page's
  post-queue rule), not mere protobuf presence: `text.raw = ""` is empty. `filtered_by`:
  the first node, in execution order, that got a non-empty input and gave an empty output.
- The random draw of a `random-sample` node uses the key "<seed_key>/<node id>", so a retried
  capture gets the same decision and two samplers in one workflow draw independently.

Plans: a workflow is compiled once into a `Plan` (nodes in execution order, parsed operator
parameters, knowledge-graph relations) and cached per process, keyed by the workflow's pk and
`modified_at` and by a per-app relations generation, and rebuilt at most every
`WORKFLOW_PLAN_TTL_SECONDS` (so a relation changed in another process is seen). Inline admission
(`evaluate_inline`) runs only operators on a cached plan: no database query per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.content import has_content
from collectors_module.core.errors import SC, ApiError
from collectors_module.inference.services import prepare_inputs, run_model_version

from . import conf
from .model_types import OPERATOR_TYPES
from .models import WorkflowNode
from .operators import quota as class_quota
from .operators import registry, sampling
from .operators.registry import CompiledOperator
from .selectors import relation_tuples_of_app

Data = resources_pb2.Data
_EMPTY = Data()


# --- results ----------------------------------------------------------------------------------


@dataclass
class NodeRun:
    node_id: str
    model_version: Any  # inference.models.ModelVersion
    data: Data
    status_code: int = SC.SUCCESS
    details: str = ""
    duration_ms: float = 0.0
    reused: bool = False  # the precomputed (captured) prediction was used, the model did not run
    skipped: bool = False  # not run: every input it reads was empty

    @property
    def ok(self) -> bool:
        return self.status_code == SC.SUCCESS

    @property
    def empty(self) -> bool:
        return not has_content(self.data)


@dataclass
class WorkflowRun:
    outputs: list[NodeRun]  # one per node, in the workflow's node order
    keep: bool
    filtered_by: str = ""
    status_code: int = SC.SUCCESS  # the first failing node's code, else SUCCESS
    details: str = ""
    failed_node: str = ""

    def output(self, node_id: str) -> NodeRun:
        for run in self.outputs:
            if run.node_id == node_id:
                return run
        raise KeyError(node_id)


# --- configuration of one node ----------------------------------------------------------------


def effective_config(model_version, override: dict | None) -> tuple[dict, list]:
    """(params, concepts) of a node: the version's output_info (or its model's), with the node's
    `output_info_override` on top (params merged key by key, concepts replaced when given)."""
    base = model_version.output_info or model_version.model.output_info or {}
    override = override or {}
    params = dict(base.get("params") or {})
    params.update(override.get("params") or {})
    concepts = (override.get("data") or {}).get("concepts") or (base.get("data") or {}).get(
        "concepts"
    )
    return params, list(concepts or [])


def is_operator_version(model_version) -> bool:
    return model_version.model.model_type_id in OPERATOR_TYPES or model_version.runner.startswith(
        "operator:"
    )


def operator_type_of(model_version) -> str:
    if model_version.model.model_type_id in OPERATOR_TYPES:
        return model_version.model.model_type_id
    return model_version.runner.partition(":")[2]


# --- plans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanNode:
    index: int  # position in the workflow's node order
    node_id: str
    model_version: Any
    model_version_pk: int
    model_type_id: str
    parents: tuple[int, ...]
    terminal: bool
    suppress_output: bool
    params: dict
    operator: CompiledOperator | None  # None for a model node
    reads_input_metadata: bool = False  # a metadata filter
    quota: bool = False  # a class-quota node: the caller's gate counts it
    duplicate: bool = False  # a near-duplicate node: the caller's gate looks it up (worker only)


@dataclass(frozen=True)
class Plan:
    workflow_pk: int
    app_pk: int
    nodes: tuple[PlanNode, ...]  # node order
    order: tuple[int, ...]  # execution (topological) order, indices into nodes
    terminals: tuple[int, ...]
    samples: bool = False  # has a random-sample node (needs a seed key)
    reads_metadata: bool = False

    @property
    def model_nodes(self) -> tuple[PlanNode, ...]:
        return tuple(n for n in self.nodes if n.operator is None)

    def inline_for(self, source_pk: int | None) -> bool:
        return all(
            (n.operator is not None and not n.duplicate)
            or (n.model_version_pk == source_pk and not n.parents)
            for n in self.nodes
        )


def topological_order(node_ids: Sequence[str], parents: dict[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm, stable in node order. Raises ValueError naming a node on a cycle."""
    remaining = {n: set(parents.get(n, ())) for n in node_ids}
    order: list[str] = []
    while remaining:
        ready = [n for n in node_ids if n in remaining and not remaining[n]]
        if not ready:
            raise ValueError(next(n for n in node_ids if n in remaining))
        for n in ready:
            order.append(n)
            del remaining[n]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


def build_plan(workflow) -> Plan:
    """Compile a workflow (nodes with their versions loaded, or loaded here) into a Plan."""

    prefetched = getattr(workflow, "_prefetched_objects_cache", {})
    if "nodes" in prefetched:
        nodes = list(prefetched["nodes"])
    else:  # one query, not one per node
        nodes = list(
            WorkflowNode.objects.filter(workflow_id=workflow.pk).select_related(
                "model_version__model__app__owner"
            )
        )
    nodes.sort(key=lambda n: (n.position, n.pk))
    ids = [n.node_id for n in nodes]
    index = {nid: i for i, nid in enumerate(ids)}
    parent_ids = {n.node_id: [p for p in (n.node_inputs or []) if p in index] for n in nodes}
    order = topological_order(ids, parent_ids)
    read = {p for ps in parent_ids.values() for p in ps}
    relations: list | None = None
    plan_nodes = []
    for i, node in enumerate(nodes):
        mv = node.model_version
        params, concepts = effective_config(mv, node.output_info_override)
        operator = None
        type_id = mv.model.model_type_id
        if is_operator_version(mv):
            type_id = operator_type_of(mv)
            if type_id in registry.NEEDS_RELATIONS and relations is None:
                relations = relation_tuples_of_app(workflow.app_id)
            operator = registry.compile_operator(type_id, params, concepts, relations or ())
        plan_nodes.append(
            PlanNode(
                index=i,
                node_id=node.node_id,
                model_version=mv,
                model_version_pk=mv.pk,
                model_type_id=type_id,
                parents=tuple(index[p] for p in parent_ids[node.node_id]),
                terminal=node.node_id not in read,
                suppress_output=node.suppress_output,
                params=params,
                operator=operator,
                reads_input_metadata=type_id == "metadata-filter",
                quota=type_id == "class-quota",
                duplicate=type_id == "near-duplicate",
            )
        )
    return Plan(
        workflow_pk=workflow.pk,
        app_pk=workflow.app_id,
        nodes=tuple(plan_nodes),
        order=tuple(index[n] for n in order),
        terminals=tuple(n.index for n in plan_nodes if n.terminal),
        samples=any(n.model_type_id == "random-sample" for n in plan_nodes),
        reads_metadata=any(n.reads_input_metadata for n in plan_nodes),
    )


_plans: dict[int, tuple[tuple, float, Plan]] = {}
_app_generation: dict[int, int] = {}
_lock = threading.Lock()


def invalidate_app(app_pk: int) -> None:
    """Concept relations of an app changed: plans of its workflows are rebuilt on next use."""
    with _lock:
        _app_generation[app_pk] = _app_generation.get(app_pk, 0) + 1


def invalidate_workflow(workflow_pk: int) -> None:
    _plans.pop(workflow_pk, None)


_ttl: list[float] = []  # conf.plan_ttl_seconds(), read once (reading settings costs microseconds)


def _plan_ttl() -> float:
    if not _ttl:
        _ttl.append(conf.plan_ttl_seconds())
    return _ttl[0]


def get_plan(workflow) -> Plan:
    """The cached Plan of `workflow` (rebuilt when it changed, or after the TTL)."""
    key = (workflow.modified_at, _app_generation.get(workflow.app_id, 0))
    now = time.monotonic()
    cached = _plans.get(workflow.pk)
    if cached is not None and cached[0] == key and now - cached[1] < _plan_ttl():
        return cached[2]
    plan = build_plan(workflow)
    _plans[workflow.pk] = (key, now, plan)
    return plan


# --- data helpers -----------------------------------------------------------------------------


def is_empty(data: Data) -> bool:
    """The post-queue rule (core.content): no field holds a non-default value."""
    return not has_content(data)


def merge(datas: Sequence[Data]) -> Data:
    """Fan-in: several parents' outputs as one input (empty ones ignored)."""
    present = [d for d in datas if not is_empty(d)]
    if not present:
        return _EMPTY
    if len(present) == 1:
        return present[0]
    out = Data()
    out.CopyFrom(present[0])
    concepts: dict[str, resources_pb2.Concept] = {}
    for d in present:
        for c in d.concepts:
            key = c.id or c.name
            if key not in concepts or c.value > concepts[key].value:
                concepts[key] = c
    del out.concepts[:]
    out.concepts.extend(concepts.values())
    texts: list[str] = []
    for d in present:
        if d.text.raw and d.text.raw not in texts:
            texts.append(d.text.raw)
    if texts:
        out.text.raw = "\n".join(texts)
    for d in present[1:]:
        out.regions.extend(d.regions)
        if not (out.image.base64 or out.image.url) and (d.image.base64 or d.image.url):
            out.image.CopyFrom(d.image)
        if d.HasField("metadata"):
            for k, v in d.metadata.fields.items():
                if k not in out.metadata.fields:
                    out.metadata.fields[k].CopyFrom(v)
    return out


def has_media(data: Data) -> bool:
    return bool(data.image.base64 or data.image.url or data.text.raw or data.text.url)


def with_media_of(data: Data, source: Data) -> Data:
    """`data` plus the image and text of `source` (for a model node reading an operator's concepts)."""
    if has_media(data) or not has_media(source):
        return data
    out = Data()
    out.CopyFrom(data)
    if source.image.base64 or source.image.url:
        out.image.CopyFrom(source.image)
    if source.text.raw or source.text.url:
        out.text.CopyFrom(source.text)
    return out


def with_metadata_of(data: Data, source: Data) -> Data:
    if data.HasField("metadata") or not source.HasField("metadata"):
        return data
    out = Data()
    out.CopyFrom(data)
    out.metadata.CopyFrom(source.metadata)
    return out


def prequeue_input(input_data: Data, source_output: Data) -> Data:
    """The workflow input of a pre-queue workflow run by a worker: the model's output (concepts,
    regions, text) with the original input's media and metadata where the output has none, so
    operators see the prediction and model nodes see the image."""
    out = Data()
    out.CopyFrom(source_output)
    if not (out.image.base64 or out.image.url) and (
        input_data.image.base64 or input_data.image.url
    ):
        out.image.CopyFrom(input_data.image)
    if not (out.text.raw or out.text.url) and (input_data.text.raw or input_data.text.url):
        out.text.CopyFrom(input_data.text)
    if input_data.HasField("metadata"):
        for k, v in input_data.metadata.fields.items():
            if k not in out.metadata.fields:
                out.metadata.fields[k].CopyFrom(v)
    return out


def _node_key(base: str, node_id: str) -> str:
    return f"{base}/{node_id}"


# A quota gate: (node id, class-quota config, concepts the input counts under) -> the concept
# that is full ("" when the input is kept, and counted). Given by the capture engine; its
# optional `duplicate(node id, near-duplicate config, workflow input) -> reason` answers
# near-duplicate nodes ("" when the input is not a duplicate).
QuotaGate = Callable[[str, Any, list], str]


def _through_quota(
    node: PlanNode, out: Data, quota: QuotaGate | None, source: Data | None = None
) -> Data:
    if quota is None or not has_content(out):
        return out
    if node.duplicate:
        lookup = getattr(quota, "duplicate", None)
        if lookup is not None and lookup(node.node_id, node.operator.config, source or out):
            return _EMPTY
        return out
    if not node.quota:
        return out
    concepts = class_quota.counted(out, node.operator.config)
    if concepts and quota(node.node_id, node.operator.config, concepts):
        return _EMPTY
    return out


# --- running ----------------------------------------------------------------------------------


def _outcome(plan: Plan, runs: list[NodeRun | None], inputs_of: dict[int, Data]) -> WorkflowRun:
    outputs = [r for r in runs if r is not None]
    failed = next((runs[i] for i in plan.order if runs[i] is not None and not runs[i].ok), None)
    keep = any(runs[t] is not None and runs[t].ok and not runs[t].empty for t in plan.terminals)
    filtered_by = ""
    if not keep:
        for i in plan.order:
            run = runs[i]
            if (
                run is not None
                and run.ok
                and run.empty
                and not run.skipped
                and not is_empty(inputs_of.get(i, _EMPTY))
            ):
                filtered_by = run.node_id
                break
    return WorkflowRun(
        outputs=outputs,
        keep=keep,
        filtered_by=filtered_by,
        status_code=failed.status_code if failed else SC.SUCCESS,
        details=failed.details if failed else "",
        failed_node=failed.node_id if failed else "",
    )


def run_workflow(
    workflow,
    inputs: list[Data],
    *,
    precomputed: dict[int, Data | list[Data]] | None = None,
    seed_key: str = "",
    seed_keys: Sequence[str] | None = None,
    quota: QuotaGate | None = None,
) -> list[WorkflowRun]:
    """Run every node over every input; one WorkflowRun per input, outputs in node order.

    `precomputed[model_version_pk]` is a Data (for a single input) or a list aligned with
    `inputs`. `seed_keys` gives each input its own stable key (default: `seed_key`, suffixed
    with the input's index when there are several; empty means a digest of the input).
    `quota`: the gate counting class-quota nodes (without one they let inputs through)."""

    plan = get_plan(workflow)
    n = len(inputs)
    precomputed = precomputed or {}
    keys: list[str] = []
    for k in range(n):
        key = seed_keys[k] if seed_keys is not None and k < len(seed_keys) else ""
        if not key and seed_key:
            key = seed_key if n == 1 else f"{seed_key}#{k}"
        if not key and plan.samples:
            key = sampling.fallback_key(inputs[k])
        keys.append(key)
    runs: list[list[NodeRun | None]] = [[None] * len(plan.nodes) for _ in range(n)]
    node_inputs: list[dict[int, Data]] = [{} for _ in range(n)]

    for i in plan.order:
        node = plan.nodes[i]
        for k in range(n):
            if node.parents:
                parent_runs = [runs[k][p] for p in node.parents]
                data = merge([r.data for r in parent_runs if r is not None and r.ok])
            else:
                data = inputs[k]
            if node.reads_input_metadata:
                data = with_metadata_of(data, inputs[k])
            node_inputs[k][i] = data

        if node.operator is not None:
            for k in range(n):
                data = node_inputs[k][i]
                if node.parents and is_empty(data):
                    runs[k][i] = NodeRun(
                        node.node_id,
                        node.model_version,
                        _EMPTY,
                        skipped=True,
                        details="skipped: its input was empty",
                    )
                    continue
                started = time.perf_counter()
                try:
                    out = node.operator(data, _node_key(keys[k], node.node_id))
                    out = _through_quota(node, out, quota, inputs[k])
                    runs[k][i] = NodeRun(
                        node.node_id,
                        node.model_version,
                        out,
                        duration_ms=(time.perf_counter() - started) * 1000,
                    )
                except ApiError as exc:
                    runs[k][i] = NodeRun(
                        node.node_id,
                        node.model_version,
                        _EMPTY,
                        status_code=exc.code,
                        details=exc.details,
                    )
            continue

        reuse = precomputed.get(node.model_version_pk) if not node.parents else None
        if reuse is not None:
            for k in range(n):
                data = reuse if isinstance(reuse, Data) else reuse[k]
                runs[k][i] = NodeRun(
                    node.node_id,
                    node.model_version,
                    data,
                    reused=True,
                    details="reused the captured prediction",
                )
            continue

        todo: list[int] = []
        batch: list[Data] = []
        for k in range(n):
            data = node_inputs[k][i]
            if is_empty(data):
                runs[k][i] = NodeRun(
                    node.node_id,
                    node.model_version,
                    _EMPTY,
                    skipped=True,
                    details="skipped: its input was empty",
                )
                continue
            todo.append(k)
            batch.append(with_media_of(data, inputs[k]) if node.parents else data)
        if not todo:
            continue
        started = time.perf_counter()
        try:
            results = run_model_version(node.model_version, batch, node.params)
        except ApiError as exc:
            results = [exc] * len(batch)
        elapsed = (time.perf_counter() - started) * 1000
        for k, result in zip(todo, results, strict=True):
            if isinstance(result, ApiError):
                runs[k][i] = NodeRun(
                    node.node_id,
                    node.model_version,
                    _EMPTY,
                    status_code=result.code,
                    details=result.details,
                    duration_ms=elapsed,
                )
            else:
                runs[k][i] = NodeRun(node.node_id, node.model_version, result, duration_ms=elapsed)

    return [_outcome(plan, runs[k], node_inputs[k]) for k in range(n)]


def run_on_inputs(workflow, inputs: list[resources_pb2.Input]) -> list[WorkflowRun | ApiError]:
    """PostWorkflowResults and the builder's "try it": prepare the inputs as the predict path does
    (bytes validated, URLs fetched safely), run the workflow on those that are fine, and return one
    WorkflowRun per input, or the ApiError of an input that could not be prepared. Writes nothing."""

    prepared = prepare_inputs(list(inputs))
    ok = [i for i, p in enumerate(prepared) if not isinstance(p, ApiError)]
    runs = run_workflow(
        workflow,
        [prepared[i] for i in ok],
        seed_keys=[inputs[i].id for i in ok],
    )
    out: list[WorkflowRun | ApiError] = list(prepared)
    for i, run in zip(ok, runs, strict=True):
        out[i] = run
    return out


def node_depths(workflow) -> dict[str, int]:
    """Column of each node in a drawing of the graph: 0 for nodes reading the workflow input,
    else one more than the deepest node it reads."""
    plan = get_plan(workflow)
    depth: dict[int, int] = {}
    for i in plan.order:
        parents = plan.nodes[i].parents
        depth[i] = 1 + max(depth[p] for p in parents) if parents else 0
    return {plan.nodes[i].node_id: d for i, d in depth.items()}


# --- inline admission -------------------------------------------------------------------------


def is_inline(workflow, source_model_version=None) -> bool:
    """True when the workflow holds only operators and (reading the workflow input) the source
    model version itself, so it can be decided on the source prediction without running a model."""
    source_pk = getattr(source_model_version, "pk", None)
    return get_plan(workflow).inline_for(source_pk)


def evaluate_inline(
    workflow,
    source_output: Data,
    *,
    source_model_version=None,
    seed_key: str = "",
    input_data: Data | None = None,
    quota: QuotaGate | None = None,
) -> tuple[bool, str]:
    """(keep, filtered_by) of an inline workflow evaluated on the model's OUTPUT: operators
    without node_inputs read `source_output`; a node of the source version gives it as is.
    `input_data` (optional) supplies the input's metadata to metadata filters; `quota` counts
    class-quota nodes.
    Raises ValueError when the workflow is not inline (it needs a model run)."""
    plan = get_plan(workflow)
    source_pk = getattr(source_model_version, "pk", None)
    if not plan.inline_for(source_pk):
        raise ValueError("this workflow runs models other than the source: not inline")
    meta_source = input_data if input_data is not None else source_output
    if plan.samples and not seed_key:
        seed_key = sampling.fallback_key(source_output)
    nodes = plan.nodes
    outputs: list[Data | None] = [None] * len(nodes)
    filtered_by = ""
    for i in plan.order:
        node = nodes[i]
        if node.operator is None:
            outputs[i] = source_output
            continue
        if node.parents:
            parents = [outputs[p] for p in node.parents]
            data = parents[0] if len(parents) == 1 else merge(parents)
            if is_empty(data):
                outputs[i] = _EMPTY
                continue
        else:
            data = source_output
        if node.reads_input_metadata:
            data = with_metadata_of(data, meta_source)
        out = _through_quota(node, node.operator(data, _node_key(seed_key, node.node_id)), quota)
        outputs[i] = out
        if not filtered_by and not has_content(out) and has_content(data):
            filtered_by = node.node_id
    keep = any(has_content(outputs[t]) for t in plan.terminals)
    return keep, ("" if keep else filtered_by)


__all__ = [
    "NodeRun",
    "Plan",
    "WorkflowRun",
    "build_plan",
    "effective_config",
    "evaluate_inline",
    "get_plan",
    "invalidate_app",
    "invalidate_workflow",
    "is_inline",
    "merge",
    "node_depths",
    "prequeue_input",
    "run_on_inputs",
    "run_workflow",
]
