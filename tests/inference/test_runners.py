"""Runners without HTTP: loaded once per process, safe under threads, honest errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.errors import SC, ApiError
from collectors_module.inference.runners import registry
from collectors_module.inference.runners.builtin import CATALOG
from collectors_module.inference.runners.registry import get_runner

from .conftest import solid, text_image


def _image(raw: bytes) -> resources_pb2.Data:
    return resources_pb2.Data(image=resources_pb2.Image(base64=raw))


def test_each_builtin_runner_is_loaded_once_even_when_threads_race():
    registry._cache.clear()  # make the threads race to load each runner
    for spec in CATALOG:
        with ThreadPoolExecutor(8) as pool:
            runners = list(pool.map(get_runner, [spec.runner] * 16, [{}] * 16))
        assert len({id(r) for r in runners}) == 1
        assert runners[0].model_type_id == spec.model_type_id


def test_ocr_gives_right_answers_from_concurrent_threads():
    runner = get_runner("builtin:ocr", {})
    words = ["ALPHA 1", "BRAVO 2", "CHARLIE 3", "DELTA 4"] * 2
    images = [_image(text_image(w)) for w in words]

    def read(data):
        (result,) = runner.predict([data], {})
        return result.text.raw.replace(" ", "")

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(read, images))
    assert got == [w.replace(" ", "") for w in words]


def test_one_bad_input_does_not_fail_the_batch():
    runner = get_runner("builtin:color-recognition", {})
    results = runner.predict(
        [_image(solid("red")), resources_pb2.Data(), _image(solid("green"))], {}
    )
    assert results[0].concepts[0].id == "red"
    assert isinstance(results[1], ApiError)
    assert results[1].code == SC.INPUT_INVALID_ARGUMENT
    assert results[2].concepts[0].id == "green"


@pytest.mark.parametrize(
    ("runner", "code"),
    [
        ("operator:random-sample", SC.MODEL_INVALID_REQUEST),
        ("builtin:does-not-exist", SC.MODEL_INVALID_ARGUMENT),
        ("", SC.MODEL_INVALID_REQUEST),
    ],
)
def test_non_runners_are_refused(runner, code):
    with pytest.raises(ApiError) as exc:
        get_runner(runner, {})
    assert exc.value.code == code


@pytest.mark.parametrize(
    ("color", "name"),
    [
        ((255, 255, 255), "white"),
        ((0, 0, 0), "black"),
        ((128, 128, 128), "gray"),
        ((255, 140, 0), "orange"),
        ((250, 230, 20), "yellow"),
        ((20, 180, 40), "green"),
        ((0, 200, 220), "cyan"),
        ((20, 40, 210), "blue"),
        ((130, 30, 200), "purple"),
        ((255, 100, 200), "pink"),
        ((120, 70, 20), "brown"),
    ],
)
def test_colour_names(color, name):
    (result,) = get_runner("builtin:color-recognition", {}).predict([_image(solid(color))], {})
    assert result.concepts[0].id == name


def test_builtin_models_are_seeded_again_after_a_flush(transactional_db):
    from django.core.management import call_command

    from collectors_module.inference.models import ModelVersion

    call_command("flush", interactive=False, verbosity=0)
    runners = set(
        ModelVersion.objects.filter(model__app__owner__username="builtin").values_list(
            "runner", flat=True
        )
    )
    assert runners == {spec.runner for spec in CATALOG}
