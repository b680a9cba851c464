"""Clarifai's Python SDK (clarifai 12.4.1), everyday calls, run unchanged against Collectors.

Runs in .venv-sdk (the SDK's own environment) as a subprocess of tests/clients/test_python_sdk.py,
configured the way the README tells users to: CLARIFAI_API_BASE=https://host:port,
CLARIFAI_ROOT_CERTIFICATES_PATH, CLARIFAI_PAT, CLARIFAI_USER_ID. Every operation runs in order
(later ones use what earlier ones made), checks what it got back, and is reported by name as
"ok" or the failure; the last line printed is the JSON report.

argv[1]: JSON with the file paths of test images and the ids the test set up.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import traceback

from clarifai.client.app import App
from clarifai.client.input import Inputs
from clarifai.client.model import Model
from clarifai.client.user import User
from clarifai.client.workflow import Workflow
from clarifai.runners.utils.data_types import Concept, Image, Region, Text
from clarifai_grpc.grpc.api import resources_pb2

CFG = json.loads(sys.argv[1])
RESULTS: dict[str, str] = {}
FACTS: dict[str, object] = {}


def op(name):
    def run(fn):
        try:
            fn()
        except Exception as exc:  # every failure is reported, the run goes on
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            RESULTS[name] = f"FAIL {detail[:1500]}"
        else:
            RESULTS[name] = "ok"
        return fn

    return run


def refused(fn, *needles) -> str:
    """Run `fn`, which must raise; the error text must contain every needle."""
    try:
        fn()
    except Exception as exc:
        text = str(exc)
        missing = [n for n in needles if n not in text]
        assert not missing, f"refused, but without {missing}: {text[:600]}"
        return text
    raise AssertionError("expected the server to refuse this call")


def read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


USER = CFG["user_id"]
APP = "sdk-app"
RED = read(CFG["red_png"])
BLUE = read(CFG["blue_png"])
OCR_PNG = read(CFG["ocr_png"])
QR_PNG = read(CFG["qr_png"])
VERSIONS = CFG["versions"]
TMP = tempfile.mkdtemp(prefix="sdk-")

user = User(user_id=USER)
state: dict = {}


# --- users and apps -----------------------------------------------------------------------------


@op("User.get_user_info")
def _():
    info = user.get_user_info()
    assert info.user.id == USER, info
    assert user.get_user_info(user_id="me").user.id == USER


@op("User.create_app")
def _():
    app = user.create_app(app_id=APP, base_workflow="Empty", description="made by the SDK")
    assert app.id == APP


@op("User.list_apps")
def _():
    ids = [a.id for a in user.list_apps()]
    assert APP in ids, ids
    assert CFG["app_id"] in ids, ids


@op("User.app")
def _():
    assert user.app(app_id=APP).id == APP


@op("User.patch_app")
def _():
    user.patch_app(app_id=APP, action="overwrite", description="patched by the SDK", notes="n1")
    info = user.app(app_id=APP).app_info
    assert info.description == "patched by the SDK", info
    assert info.notes == "n1", info
    user.patch_app(app_id=APP, action="merge", metadata={"team": "vision"})
    user.patch_app(app_id=APP, action="merge", metadata={"stage": "dev"})
    meta = dict(user.app(app_id=APP).app_info.metadata)
    assert meta == {"team": "vision", "stage": "dev"}, meta


@op("User.patch_app refuses an unknown action")
def _():
    refused(lambda: user.patch_app(app_id=APP, action="replace", description="x"), "replace")


@op("User.patch_app refuses a field it cannot change")
def _():
    refused(lambda: user.patch_app(app_id=APP, base_workflow="Universal"), "default_workflow")


@op("User.list_models")
def _():
    models = user.list_models(user_id="builtin", app_id="main", show=False)
    ids = {m["id"] for m in models}
    assert {"color-recognition", "ocr", "sentiment", "qr-code"} <= ids, ids


app = App(user_id=USER, app_id=APP)


# --- built-in models: the model client (method signatures) and the proto calls ------------------


def builtin(model_id: str) -> Model:
    return Model(model_id=model_id, user_id="builtin", app_id="main")


@op("App.list_models")
def _():
    ids = [m.id for m in App(user_id="builtin", app_id="main").list_models()]
    assert "color-recognition" in ids, ids


@op("Model.list_versions")
def _():
    versions = [v.model_version.id for v in builtin("sentiment").list_versions()]
    assert VERSIONS["sentiment"] in versions, versions


@op("Model.available_methods and method_signature")
def _():
    model = builtin("color-recognition")
    assert list(model.available_methods()) == ["predict"]
    sig = model.method_signature("predict")
    assert sig == "def predict(image: data_types.Image) -> List[data_types.Concept]:", sig
    text_sig = builtin("sentiment").method_signature("predict")
    assert text_sig == "def predict(text: data_types.Text) -> List[data_types.Concept]:", text_sig


@op("Model.predict(image=...) color-recognition")
def _():
    concepts = builtin("color-recognition").predict(image=Image(bytes=RED))
    assert isinstance(concepts, list), concepts
    assert isinstance(concepts[0], Concept), concepts
    assert concepts[0].name == "red", concepts


@op("Model.predict(Image) positional, versioned model")
def _():
    model = Model(
        model_id="color-recognition",
        user_id="builtin",
        app_id="main",
        model_version={"id": VERSIONS["color-recognition"]},
    )
    assert model.predict(Image(bytes=BLUE))[0].name == "blue"


@op("Model.predict batch of dicts")
def _():
    out = builtin("color-recognition").predict(
        [{"image": Image(bytes=RED)}, {"image": Image(bytes=BLUE)}]
    )
    assert [c[0].name for c in out] == ["red", "blue"], out


@op("Model.predict(image=...) ocr")
def _():
    text = builtin("ocr").predict(image=Image(bytes=OCR_PNG))
    assert isinstance(text, Text), text
    assert text.text.replace(" ", "") == "HELLO42", text


@op("Model.predict(image=...) qr-code")
def _():
    regions = builtin("qr-code").predict(image=Image(bytes=QR_PNG))
    if isinstance(regions, Region):
        regions = [regions]
    assert regions, regions
    assert regions[0].text == "collectors-sdk-qr", regions
    assert regions[0].concepts[0].id == "qr-code"


@op("Model.predict(text=...) sentiment")
def _():
    concepts = builtin("sentiment").predict(text="I love this, it is wonderful!")
    assert concepts[0].name == "positive", concepts
    negative = builtin("sentiment").predict(text=Text("This is terrible and sad."))
    assert negative[0].name == "negative", negative


@op("Model.predict with_proto")
def _():
    result, response = builtin("sentiment").predict(text="great", with_proto=True)
    assert response.status.code == 10000
    assert result[0].name == "positive"


@op("Model.async_predict")
def _():
    async def go():
        result = await builtin("color-recognition").async_predict(image=Image(bytes=RED))
        # this SDK's async wrapper hands back the call's coroutine: await it too
        return await result if asyncio.iscoroutine(result) else result

    assert asyncio.run(go())[0].name == "red"


@op("Model.predict_by_bytes color-recognition")
def _():
    r = builtin("color-recognition").predict_by_bytes(RED, input_type="image")
    assert r.outputs[0].data.concepts[0].name == "red", r.status


@op("Model.predict_by_bytes without input_type (GetModelType)")
def _():
    r = builtin("color-recognition").predict_by_bytes(BLUE)
    assert r.outputs[0].data.concepts[0].name == "blue", r.status


@op("Model.predict_by_bytes output_config")
def _():
    r = builtin("sentiment").predict_by_bytes(
        b"I love it", input_type="text", output_config={"max_concepts": 1}
    )
    assert len(r.outputs[0].data.concepts) == 1, r.outputs[0].data


@op("Model.predict_by_bytes ocr")
def _():
    r = builtin("ocr").predict_by_bytes(OCR_PNG, input_type="image")
    assert r.outputs[0].data.text.raw.replace(" ", "") == "HELLO42", r.outputs[0].data


@op("Model.predict_by_bytes qr-code")
def _():
    r = builtin("qr-code").predict_by_bytes(QR_PNG, input_type="image")
    assert r.outputs[0].data.regions[0].data.text.raw == "collectors-sdk-qr"


@op("Model.predict_by_bytes sentiment")
def _():
    r = builtin("sentiment").predict_by_bytes(b"What a lovely day", input_type="text")
    assert r.outputs[0].data.concepts[0].name == "positive"


@op("Model.predict with raw Input protos")
def _():
    proto = Inputs.get_input_from_bytes("", image_bytes=RED)
    r = builtin("color-recognition").predict(inputs=[proto])
    assert r.outputs[0].data.concepts[0].name == "red"


if CFG.get("remote_url"):

    @op("App.create_model (remote openai-chat)")
    def _():
        app.create_model(
            model_id="captioner",
            model_type_id="image-to-text",
            model_version={
                "metadata": {
                    "runner": "remote:openai-chat",
                    "url": CFG["remote_url"],
                    "model": "tiny-vision",
                }
            },
        )

    @op("Model.predict(image=...) remote model")
    def _():
        model = Model(model_id="captioner", user_id=USER, app_id=APP)
        assert model.method_signature("predict") == (
            "def predict(image: data_types.Image) -> data_types.Text:"
        )
        text = model.predict(image=Image(bytes=RED))
        assert text.text == "An 8x8 image, mostly red.", text


# --- concepts and the knowledge graph -----------------------------------------------------------


@op("App.create_concepts")
def _():
    app.create_concepts(
        concept_ids=["cat", "kitten", "animal"], concepts=["Cat", "Kitten", "Animal"]
    )


@op("App.list_concepts")
def _():
    concepts = {c.id: c.name for c in app.list_concepts()}
    assert concepts == {"animal": "Animal", "cat": "Cat", "kitten": "Kitten"}, concepts
    page = list(app.list_concepts(page_no=1, per_page=2))
    assert [c.id for c in page] == ["animal", "cat"], page


@op("App.create_concepts refuses a duplicate")
def _():
    refused(lambda: app.create_concepts(concept_ids=["cat"]), "already exists")


@op("Inputs.patch_concepts")
def _():
    app.inputs().patch_concepts(concept_ids=["cat"], labels=["Domestic cat"])
    assert {c.id: c.name for c in app.list_concepts()}["cat"] == "Domestic cat"


@op("App.create_concept_relations")
def _():
    app.create_concept_relations("kitten", ["cat", "animal"], ["hyponym", "hyponym"])


@op("App.search_concept_relations")
def _():
    rels = list(app.search_concept_relations(concept_id="kitten"))
    assert sorted(r.object_concept.id for r in rels) == ["animal", "cat"], rels
    state["relation_ids"] = [r.id for r in rels]


@op("App.delete_concept_relations")
def _():
    app.delete_concept_relations("kitten", concept_relation_ids=state["relation_ids"][:1])
    assert len(list(app.search_concept_relations(concept_id="kitten"))) == 1


# --- inputs and annotations ---------------------------------------------------------------------

inputs = app.inputs()


@op("Inputs.upload_from_bytes")
def _():
    inputs.upload_from_bytes(input_id="red-1", image_bytes=RED, labels=["red-thing"])


@op("Inputs.upload_text")
def _():
    inputs.upload_text(input_id="text-1", raw_text="a short note")


@op("Inputs.upload_from_url")
def _():
    inputs.upload_from_url(input_id="url-1", image_url="https://example.com/cat.jpg")


@op("Inputs.list_inputs")
def _():
    ids = sorted(i.id for i in inputs.list_inputs())
    assert ids == ["red-1", "text-1", "url-1"], ids
    images = sorted(i.id for i in inputs.list_inputs(input_type="image"))
    assert images == ["red-1", "url-1"], images


@op("App.get_input_count")
def _():
    assert app.get_input_count() == 3


@op("Inputs.get_input")
def _():
    got = inputs.get_input("red-1")
    assert got.id == "red-1", got
    assert got.data.concepts[0].id == "red-thing", got


@op("Inputs.download_inputs")
def _():
    (content,) = inputs.download_inputs([inputs.get_input("red-1")])
    assert content == RED


@op("Inputs.upload_annotations")
def _():
    bbox = Inputs.get_bbox_proto("red-1", "square", [0.1, 0.1, 0.9, 0.9], annot_id="ann-box")
    failed = inputs.upload_annotations([bbox])
    assert failed == [], failed


@op("Inputs.list_annotations")
def _():
    anns = list(inputs.list_annotations(batch_input=[inputs.get_input("red-1")]))
    assert [a.id for a in anns] == ["ann-box"], anns
    region = anns[0].data.regions[0]
    assert region.data.concepts[0].id == "square"
    assert abs(region.region_info.bounding_box.right_col - 0.9) < 1e-6


@op("Inputs.patch_annotations (merge)")
def _():
    extra = resources_pb2.Annotation(
        id="ann-box",
        input_id="red-1",
        data=resources_pb2.Data(concepts=[resources_pb2.Concept(id="checked", value=1.0)]),
    )
    inputs.patch_annotations([extra], action="merge")
    (ann,) = [a for a in inputs.list_annotations() if a.id == "ann-box"]
    assert [c.id for c in ann.data.concepts] == ["checked"], ann
    assert len(ann.data.regions) == 1, ann


@op("Inputs.delete_annotations")
def _():
    inputs.delete_annotations(input_ids=["red-1"], annotation_ids=["ann-box"])
    assert [a.id for a in inputs.list_annotations()] == []


@op("Inputs.delete_inputs")
def _():
    inputs.delete_inputs([inputs.get_input("url-1")])
    assert sorted(i.id for i in inputs.list_inputs()) == ["red-1", "text-1"]


# --- workflows ----------------------------------------------------------------------------------


def yaml_file(name: str, nodes: list[tuple[str, str, str | None]]) -> str:
    lines = ["workflow:", "  id: ocr-mood", "  nodes:"]
    for node_id, model_id, parent in nodes:
        lines += [
            f"    - id: {node_id}",
            "      model:",
            f"        model_id: {model_id}",
            "        user_id: builtin",
            "        app_id: main",
            f"        model_version_id: {VERSIONS[model_id]}",
        ]
        if parent:
            lines += ["      node_inputs:", f"        - node_id: {parent}"]
    path = os.path.join(TMP, name)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


@op("App.create_workflow (YAML)")
def _():
    wf = app.create_workflow(yaml_file("wf.yml", [("read", "ocr", None)]), display=False)
    assert wf.id == "ocr-mood"


@op("App.list_workflows")
def _():
    assert [w.id for w in app.list_workflows()] == ["ocr-mood"]


@op("App.patch_workflow (merge, the SDK's default)")
def _():
    app.patch_workflow(
        "ocr-mood",
        config_filepath=yaml_file(
            "wf2.yml", [("read", "ocr", None), ("mood", "sentiment", "read")]
        ),
    )
    nodes = [n.id for n in app.workflow("ocr-mood").nodes]
    assert nodes == ["read", "mood"], nodes


@op("Workflow.predict_by_bytes")
def _():
    r = app.workflow("ocr-mood").predict_by_bytes(OCR_PNG, input_type="image")
    outputs = {o.model.id: o for o in r.results[0].outputs}
    assert outputs["ocr"].data.text.raw.replace(" ", "") == "HELLO42"
    assert outputs["sentiment"].data.concepts, outputs["sentiment"]


@op("Workflow.predict")
def _():
    proto = Inputs.get_input_from_bytes("", image_bytes=OCR_PNG)
    r = Workflow(workflow_id="ocr-mood", user_id=USER, app_id=APP).predict([proto])
    assert r.status.code == 10000


@op("Workflow.export")
def _():
    path = os.path.join(TMP, "exported.yml")
    app.workflow("ocr-mood").export(path)
    with open(path) as fh:
        text = fh.read()
    assert "ocr-mood" in text, text
    assert "sentiment" in text, text


@op("App.patch_workflow (overwrite)")
def _():
    app.patch_workflow("ocr-mood", action="overwrite", description="reads and judges")
    assert app.workflow("ocr-mood").description == "reads and judges"


@op("App.patch_workflow (remove)")
def _():
    app.patch_workflow(
        "ocr-mood",
        action="remove",
        config_filepath=yaml_file("wf3.yml", [("mood", "sentiment", None)]),
    )
    assert [n.id for n in app.workflow("ocr-mood").nodes] == ["read"]


@op("App.patch_workflow refuses an unknown action")
def _():
    refused(lambda: app.patch_workflow("ocr-mood", action="append", description="x"), "append")


@op("Workflow.list_versions")
def _():
    versions = list(app.workflow("ocr-mood").list_versions())
    assert len(versions) == 4, versions  # create, merge, overwrite, remove
    FACTS["workflow_versions"] = len(versions)


@op("App.delete_workflow")
def _():
    app.delete_workflow("ocr-mood")
    assert list(app.list_workflows()) == []


# --- models of the app --------------------------------------------------------------------------


@op("App.create_model (built-in runner)")
def _():
    app.create_model(
        model_id="my-colors",
        model_type_id="visual-classifier",
        model_version={"metadata": {"runner": "builtin:color-recognition"}},
    )
    assert app.model("my-colors").model_type_id == "visual-classifier"


@op("App.model and Model.predict on the app's model")
def _():
    model = app.model("my-colors")
    assert model.predict(image=Image(bytes=RED))[0].name == "red"


@op("App.delete_model refused while a workflow uses it")
def _():
    path = os.path.join(TMP, "uses.yml")
    with open(path, "w") as fh:
        fh.write(
            "workflow:\n  id: uses-colors\n  nodes:\n    - id: c\n      model:\n"
            f"        model_id: my-colors\n        user_id: {USER}\n        app_id: {APP}\n"
        )
    app.create_workflow(path, display=False)
    try:
        text = refused(
            lambda: app.delete_model("my-colors"), "uses-colors", "MODEL_INVALID_REQUEST"
        )
        FACTS["delete_refused"] = text[:300]
    finally:
        app.delete_workflow("uses-colors")


@op("App.delete_model")
def _():
    app.delete_model("my-colors")
    assert "my-colors" not in [m.id for m in app.list_models()], "model still listed"


# --- another tenant's things --------------------------------------------------------------------


@op("another user's app does not exist")
def _():
    other = CFG["other_user"]
    gone = "CONN_DOES_NOT_EXIST"
    refused(lambda: User(user_id=other).app(app_id=CFG["other_app"]), gone)
    refused(lambda: list(App(user_id=other, app_id=CFG["other_app"]).list_concepts()), gone)
    refused(
        lambda: App(user_id=other, app_id=CFG["other_app"]).delete_model(CFG["other_model"]),
        gone,
    )
    refused(lambda: User(user_id=other).get_user_info(), gone)


@op("User.delete_app")
def _():
    user.delete_app(APP)
    assert APP not in [a.id for a in user.list_apps()]


print(json.dumps({"results": RESULTS, "facts": FACTS}))
