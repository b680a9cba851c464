"""Input detail page and the authenticated media view (the gallery lives on the app page)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from collectors_module.accounts.auth import authenticate
from collectors_module.applications.models import App
from collectors_module.applications.selectors import app_for_user
from collectors_module.core.errors import SC, ApiError
from collectors_module.core.protojson import to_dict

from .convert import annotation_to_pb
from .models import Input
from .selectors import annotations_of_inputs, inputs_of_app
from .services import annotations_import_pending

# Magic numbers of the raster formats the image validator accepts. The Content-Type of the media
# view comes from this table only (never from anything a client sent), so a stored file can never
# be served as HTML or SVG.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
)
_FORMAT_MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}


def sniff_image_mime(head: bytes) -> str:
    """A safe image MIME type for the first bytes of a file, else application/octet-stream."""
    for magic, offset, mime in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def stored_image_mime(inp: Input, head: bytes) -> str:
    """The stored format (when the inputs service recorded one) agreeing with the bytes."""
    sniffed = sniff_image_mime(head)
    image = (inp.data or {}).get("image") or {}
    info = image.get("image_info") or {} if isinstance(image, dict) else {}
    declared = (
        _FORMAT_MIME.get(str(info.get("format") or "").lower()) if isinstance(info, dict) else None
    )
    if declared and declared == sniffed:
        return declared
    return sniffed


def own_app_or_404(user, app_id: str) -> App:
    """The acting user's own app; anything else (another tenant's, public, missing) is a 404."""
    try:
        return app_for_user(user, owner_user_id=user.username, app_id=app_id, write=True)
    except ApiError as exc:
        raise Http404("App does not exist") from exc


def input_of_app_or_404(app: App, input_id: str) -> Input:
    inp = inputs_of_app(app).filter(public_id=input_id).first()
    if inp is None:
        raise Http404("Input does not exist")
    return inp


def status_name(code: int) -> str:
    try:
        return SC.StatusCode.Name(code)
    except ValueError:
        return str(code)


@dataclass
class InputCard:
    """What the gallery and the detail page show for one input."""

    input: Input
    detail_url: str
    media_url: str
    text: str
    concepts: list[dict[str, Any]]
    provenance: dict[str, Any]
    metadata: dict[str, Any]
    metadata_json: str
    regions: int
    status: str
    ok: bool
    outputs: list[dict[str, Any]] = field(default_factory=list)
    annotations_json: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """The card's title: what the input shows (its text, its best concepts, or what the
        source model said of it), for a captured one when it was captured; the id otherwise.
        Capture ids ("cap-<32 hex>") say nothing to a reader, so they are not the title."""
        what = ""
        if self.text and self.media_url:
            what = self.text
        elif self.concepts:
            what = ", ".join(c["name"] for c in self.concepts[:3])
        else:
            for o in self.outputs:
                what = ", ".join(c["name"] for c in o["concepts"][:3]) or o["text"]
                if what:
                    break
        what = what[:80]
        if self.provenance:
            when = str(self.provenance.get("captured_at") or "")[:16].replace("T", " ")
            captured = f"Captured {when} UTC" if when else "Captured"
            return f"{what} · {captured}" if what else captured
        return what or self.input.public_id


def _concepts(data: dict) -> list[dict[str, Any]]:
    out = []
    for c in data.get("concepts") or []:
        if not isinstance(c, dict):
            continue
        value = c.get("value")
        out.append(
            {
                "name": str(c.get("name") or c.get("id") or "?")[:80],
                "value": f"{float(value):.2f}" if isinstance(value, int | float) else "",
            }
        )
    return out


def _outputs(annotations) -> list[dict[str, Any]]:
    """The input's annotations (collected source-model outputs and ones posted through the API):
    who made each (the model id, else the user) and its concepts and text."""
    out = []
    for ann in annotations or []:
        data = ann.data if isinstance(ann.data, dict) else {}
        concepts = _concepts(data)
        text = (data.get("text") or {}).get("raw", "") if isinstance(data.get("text"), dict) else ""
        if concepts or text:
            by = (ann.model_ref or {}).get("id") or (ann.user.username if ann.user else "model")
            out.append({"model": str(by)[:80], "concepts": concepts, "text": str(text)[:300]})
    return out


def input_card(inp: Input, app: App, annotations=None) -> InputCard:
    """What the pages show of `inp`; `annotations` are its Annotation rows (loaded for a whole
    page by the caller, or here)."""
    if annotations is None:
        annotations = annotations_of_inputs([inp]).get(inp.pk, [])
    data = inp.data if isinstance(inp.data, dict) else {}
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    provenance = metadata.get("collector") if isinstance(metadata.get("collector"), dict) else {}
    text = inp.text or (
        (data.get("text") or {}).get("raw") if isinstance(data.get("text"), dict) else ""
    )
    media_url = ""
    if inp.image:
        media_url = reverse("inputs:media", args=[app.public_id, inp.public_id])
    return InputCard(
        input=inp,
        detail_url=reverse("inputs:detail", args=[app.public_id, inp.public_id]),
        media_url=media_url,
        text=text or "",
        concepts=_concepts(data),
        provenance=provenance,
        metadata=metadata,
        metadata_json=json.dumps(metadata, indent=2, sort_keys=True, default=str),
        regions=len(data.get("regions") or []),
        status=status_name(inp.status_code),
        ok=inp.status_code in (SC.INPUT_DOWNLOAD_SUCCESS, SC.SUCCESS),
        outputs=_outputs(annotations),
    )


@login_required
@require_GET
def input_detail_view(request: HttpRequest, app_id: str, input_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    inp = input_of_app_or_404(app, input_id)
    annotations_import_pending(app=app)
    rows = annotations_of_inputs([inp]).get(inp.pk, [])
    card = input_card(inp, app, rows)
    card.annotations_json = (
        json.dumps(
            [
                to_dict(
                    annotation_to_pb(r, input_id=inp.public_id, owner_user_id=app.owner.username),
                    compact=True,
                )
                for r in rows
            ],
            indent=2,
            default=str,
        )
        if rows
        else "[]"
    )
    data_view = {k: v for k, v in (inp.data or {}).items() if k not in ("metadata",)}
    return render(
        request,
        "inputs/detail.html",
        {
            "current_app": app,
            "card": card,
            "data_json": json.dumps(data_view, indent=2, sort_keys=True, default=str),
        },
    )


def _media_user(request: HttpRequest):
    """Who asks for media: an API key (`Authorization: Key ...`, needing Inputs:Get, an app key
    only for its own app) or the logged-in session; None when neither."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if header is None:
        return request.user if request.user.is_authenticated else None

    try:
        key = authenticate(header)
    except ApiError:
        return None
    if not key.has_scopes(["Inputs:Get"]):
        return None
    if key.app_id is not None and key.app.public_id != request.resolver_match.kwargs.get("app_id"):
        return None
    return key.owner


@require_GET
def input_media_view(request: HttpRequest, app_id: str, input_id: str) -> HttpResponse:
    user = _media_user(request)
    if user is None:
        if "HTTP_AUTHORIZATION" in request.META:
            raise Http404("No such input")  # a bad key learns nothing
        return redirect_to_login(request.get_full_path())
    app = own_app_or_404(user, app_id)
    inp = input_of_app_or_404(app, input_id)
    if not inp.image:
        raise Http404("This input has no stored image")
    try:
        handle = inp.image.open("rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404("Image not found in storage") from exc
    head = handle.read(16)
    handle.seek(0)
    response = FileResponse(handle, content_type=stored_image_mime(inp, head))
    response["Content-Disposition"] = "inline"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response
