"""Try it: run the SAVED workflow on an uploaded image or typed text; show every node's output.

Nothing is stored; the run goes through `executor.run_on_inputs` like a collector's would.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST
from google.protobuf import json_format

from collectors_module.core.errors import ApiError
from collectors_module.core.htmx import HtmxHttpRequest, partial_status
from collectors_module.inputs.views import own_app_or_404

from .. import executor
from ..forms import TryForm
from ..model_types import get_model_type
from .builder import render_editor
from .draft import load_editor

MAX_TRY_IMAGE_BYTES = 10 * 1024 * 1024


def _concepts(concepts) -> list[dict]:
    out = []
    for c in sorted(concepts, key=lambda c: -c.value)[:20]:
        out.append({"name": c.name or c.id, "id": c.id, "value": c.value})
    return out


def _node_result(run) -> dict:
    mv = run.model_version
    type_id = (
        executor.operator_type_of(mv)
        if executor.is_operator_version(mv)
        else mv.model.model_type_id
    )
    spec = get_model_type(type_id)
    data = run.data
    regions = []
    for r in data.regions[:50]:
        box = r.region_info.bounding_box
        regions.append(
            {
                "text": r.data.text.raw,
                "concepts": _concepts(r.data.concepts),
                "box": f"top {box.top_row:.2f}, left {box.left_col:.2f}, "
                f"bottom {box.bottom_row:.2f}, right {box.right_col:.2f}"
                if r.region_info.HasField("bounding_box")
                else "",
                "value": r.value,
            }
        )
    metadata = ""
    if data.HasField("metadata") and data.metadata.fields:
        metadata = json_format.MessageToJson(data.metadata, indent=None)[:500]
    return {
        "node_id": run.node_id,
        "type_title": spec.title if spec else type_id,
        "model_id": mv.model.public_id,
        "ok": run.ok,
        "status_code": run.status_code,
        "details": run.details,
        "duration_ms": run.duration_ms,
        "reused": run.reused,
        "skipped": run.skipped,
        "empty": run.empty,
        "concepts": _concepts(data.concepts),
        "text": data.text.raw,
        "regions": regions,
        "has_image": bool(data.image.base64 or data.image.url),
        "metadata": metadata,
    }


@login_required
@require_POST
def try_view(request: HtmxHttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = load_editor(request, app, workflow_id)
    form = TryForm(request.POST, request.FILES, auto_id="try-%s")
    result: dict = {}
    status = 200
    if ed.saved is None:
        result["error"] = "Save the workflow first: Try it runs the saved workflow."
        status = 400
    elif form.is_valid():
        inp = resources_pb2.Input(id="try-it")
        upload = form.cleaned_data.get("image")
        if upload is not None:
            if upload.size > MAX_TRY_IMAGE_BYTES:
                result["error"] = f"The image is larger than {MAX_TRY_IMAGE_BYTES // 1048576} MB."
            else:
                inp.data.image.base64 = upload.read()
                result["input"] = f"image {upload.name[:80]} ({upload.size} bytes)"
        else:
            inp.data.text.raw = form.cleaned_data["text"]
            result["input"] = "text"
        if form.cleaned_data["metadata"]:
            try:
                inp.data.metadata.update(form.cleaned_data["metadata"])
            except (ValueError, TypeError, RecursionError):
                result["error"] = "The metadata could not be used (too deeply nested?)."
        if "error" not in result:
            run = executor.run_on_inputs(ed.saved, [inp])[0]
            if isinstance(run, ApiError):
                result["error"] = f"The input could not be read: {run.details}"
            else:
                result["keep"] = run.keep
                result["filtered_by"] = run.filtered_by
                result["failed_node"] = run.failed_node
                result["details"] = run.details
                result["nodes"] = [_node_result(r) for r in run.outputs]
                result["total_ms"] = sum(r.duration_ms for r in run.outputs)
        if "error" in result:
            status = 400
    else:
        status = 400
    context = {"result": result, "try_form": form, "ed": ed}
    if request.htmx:
        return render(
            request,
            "workflows/edit.html#try-results",
            context,
            status=partial_status(request, status),
        )
    return render_editor(request, ed, status=status, try_form=form, result=result)
