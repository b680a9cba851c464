"""Uncertainty operators (least-confidence, margin-below, entropy-above) on REAL outputs of the
built-in classifiers, around their thresholds; their model types as ListModelTypes lists them."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from PIL import Image

from collectors_module.core.errors import ApiError
from collectors_module.inference.selectors import builtin_model_version
from collectors_module.inference.services import run_model_version
from collectors_module.workflows.operators import uncertainty
from collectors_module.workflows.operators.registry import run_operator
from tests import photos
from tests.support.rules import png

pytestmark = pytest.mark.django_db


def predict(user, model_id: str, raw: bytes) -> resources_pb2.Data:
    version = builtin_model_version(user, model_id=model_id)
    (out,) = run_model_version(version, [resources_pb2.Data(image=resources_pb2.Image(base64=raw))])
    assert isinstance(out, resources_pb2.Data), out
    return out


def halves(a, b) -> bytes:
    img = Image.new("RGB", (100, 100), a)
    img.paste(b, (50, 0, 100, 100))
    return png(img)


def kept(op: str, data, **params) -> bool:
    return bool(run_operator(op, data, params).ListFields())


def test_scores_of_real_colour_outputs(alice):
    mixed = predict(
        alice.user, "color-recognition", halves((220, 20, 30), (20, 40, 220))
    )  # red | blue
    values = sorted((c.value for c in mixed.concepts), reverse=True)
    assert abs(values[0] - 0.5) < 0.02
    assert abs(values[1] - 0.5) < 0.02
    solid = predict(alice.user, "color-recognition", png(Image.new("RGB", (64, 64), (220, 20, 30))))
    assert [c.id for c in solid.concepts] == ["red"]
    lc = uncertainty.Config("least-confidence", 0.0)
    assert abs(uncertainty.score(mixed, lc) - (1 - values[0])) < 1e-6
    assert uncertainty.score(solid, lc) < 0.01
    assert uncertainty.score(mixed, uncertainty.Config("margin-below", 0.0)) < 0.04
    assert uncertainty.score(mixed, uncertainty.Config("entropy-above", 0.0)) > 0.95
    assert uncertainty.score(solid, uncertainty.Config("entropy-above", 0.0)) == 0.0


def test_each_operator_keeps_and_drops_around_its_threshold(alice):
    mixed = predict(alice.user, "color-recognition", halves((220, 20, 30), (20, 40, 220)))
    solid = predict(alice.user, "color-recognition", png(Image.new("RGB", (64, 64), (220, 20, 30))))
    top = max(c.value for c in mixed.concepts)
    lc = 1 - top
    assert kept("least-confidence", mixed, threshold=lc - 0.01)
    assert not kept("least-confidence", mixed, threshold=lc + 0.01)
    assert not kept("least-confidence", solid, threshold=0.1)
    m = uncertainty.score(mixed, uncertainty.Config("margin-below", 0.0))
    assert kept("margin-below", mixed, threshold=m + 0.01)
    assert not kept("margin-below", mixed, threshold=m)  # equal: not below
    assert not kept("margin-below", solid, threshold=0.5)  # a single concept: margin = its value
    assert kept("entropy-above", mixed, threshold=0.9)
    assert not kept("entropy-above", solid, threshold=0.0)  # one concept: entropy 0, not above 0


def test_general_image_recognition_cat_is_less_sure_than_the_coffee(alice):
    cat = predict(alice.user, "general-image-recognition", photos.photo("chelsea"))
    coffee = predict(alice.user, "general-image-recognition", photos.photo("coffee"))
    cfg = uncertainty.Config("margin-below", 0.0)
    cat_margin, coffee_margin = uncertainty.score(cat, cfg), uncertainty.score(coffee, cfg)
    assert cat_margin < coffee_margin  # tabby / tiger / egyptian cat compete
    between = (cat_margin + coffee_margin) / 2
    assert kept("margin-below", cat, threshold=between)
    assert not kept("margin-below", coffee, threshold=between)


def test_over_regions_scores_each_region_and_the_most_uncertain_decides():
    data = resources_pb2.Data()
    sure = data.regions.add(id="sure")
    sure.data.concepts.add(id="a", value=0.95)
    unsure = data.regions.add(id="unsure")
    unsure.data.concepts.add(id="a", value=0.55)
    unsure.data.concepts.add(id="b", value=0.45)
    assert kept("least-confidence", data, threshold=0.4, over="regions")
    assert kept("least-confidence", data, threshold=0.4)  # auto: no own concepts -> regions
    assert not kept("least-confidence", data, threshold=0.4, over="concepts")
    assert not kept("margin-below", data, threshold=0.05, over="regions")
    assert kept("margin-below", data, threshold=0.15, over="regions")


def test_bad_parameters_name_their_field():
    with pytest.raises(ApiError) as exc:
        run_operator("entropy-above", resources_pb2.Data(), {"threshold": 2})
    assert exc.value.field == "output_info.params.threshold"
    with pytest.raises(ApiError) as exc:
        run_operator("margin-below", resources_pb2.Data(), {"threshold": 0.1, "over": "boxes"})
    assert exc.value.field == "output_info.params.over"
    with pytest.raises(ApiError):
        run_operator("least-confidence", resources_pb2.Data(), {})  # threshold is required


def test_list_model_types_lists_the_uncertainty_operators(api, alice):
    r = api.get("/v2/models/types", key=alice.secret)
    types = {t["id"]: t for t in r["model_types"]}
    for type_id in ("least-confidence", "margin-below", "entropy-above"):
        fields = {f["path"]: f for f in types[type_id]["model_type_fields"]}
        assert fields["output_info.params.threshold"]["required"] is True
        over = fields["output_info.params.over"]
        assert [o["id"] for o in over["model_type_enum_options"]] == ["auto", "concepts", "regions"]
