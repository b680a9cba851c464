"""general-image-recognition, general-image-embedding and general-english-image-caption on real
photos (scikit-image's sample photos, see tests/photos.py), through the REST predict path.

Thresholds the embedding tests hold: an edited copy of a photo scores a cosine similarity above
EDITED_ABOVE with the original, another photo below OTHER_BELOW (measured: edited copies 0.81 to
1.0, other photos 0.09 to 0.25).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from collectors_module.inference.runners.builtin.general import compose_caption, with_article
from tests import photos

from .conftest import CAPTION_VERSION, GENERAL_VERSION, MAIN, b64, image_input, png, text_input

EDITED_ABOVE = 0.8
OTHER_BELOW = 0.35
ALIAS = "/v2/users/clarifai/apps/main/models/general-image-recognition"


def _concepts(r, i: int = 0) -> list[dict]:
    assert r["outputs"][i]["status"]["code"] == 10000, r["outputs"][i]["status"]
    return r["outputs"][i]["data"]["concepts"]


def _top_ids(r, k: int = 5, i: int = 0) -> list[str]:
    return [c["id"] for c in _concepts(r, i)[:k]]


def _vector(r, i: int = 0) -> np.ndarray:
    assert r["outputs"][i]["status"]["code"] == 10000, r["outputs"][i]["status"]
    [emb] = r["outputs"][i]["data"]["embeddings"]
    assert emb["num_dimensions"] == 1280
    return np.asarray(emb["vector"], dtype=np.float64)


def _caption(r, i: int = 0) -> str:
    assert r["outputs"][i]["status"]["code"] == 10000, r["outputs"][i]["status"]
    return r["outputs"][i]["data"]["text"]["raw"]


def _font(size: int):
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def with_banner(name: str, text: str) -> bytes:
    """The photo with a white banner of black printed text across its top."""
    img = photos.image(name).copy()
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, img.width, 70), fill="white")
    draw.text((20, 10), text, fill="black", font=_font(44))
    return photos.encode(img)


# -- the classifier ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("coffee", {photos.ESPRESSO}),
        ("chelsea", photos.CATS),
        ("rocket", {photos.SPACE_SHUTTLE, photos.MISSILE, photos.PROJECTILE}),
    ],
)
def test_classifier_top5_holds_the_expected_concept_on_real_photos(predict, alice, name, expected):
    r = predict("general-image-recognition", [image_input(photos.photo(name))], alice.secret)
    assert r["status"]["code"] == 10000, r
    assert expected & set(_top_ids(r)), _concepts(r)[:5]


def test_espresso_is_read_as_espresso_with_high_confidence(predict, alice):
    r = predict("general-image-recognition", [image_input(photos.photo("coffee"))], alice.secret)
    top = _concepts(r)[0]
    assert (top["id"], top["name"]) == (photos.ESPRESSO, "espresso")
    assert top["value"] > 0.9
    assert top["app_id"] == "main"


def test_the_cat_photo_reads_as_a_domestic_cat(predict, alice):
    r = predict("general-image-recognition", [image_input(photos.photo("chelsea"))], alice.secret)
    top3 = _concepts(r)[:3]
    assert {c["id"] for c in top3} == photos.CATS
    assert sum(c["value"] for c in top3) > 0.8


def test_default_is_20_concepts_highest_first_and_max_concepts_min_value_apply(predict, alice):
    raw = photos.photo("coffee")
    r = predict("general-image-recognition", [image_input(raw)], alice.secret)
    values = [c["value"] for c in _concepts(r)]
    assert len(values) == 20
    assert values == sorted(values, reverse=True)
    r = predict(
        "general-image-recognition",
        [image_input(raw)],
        alice.secret,
        model={"output_info": {"output_config": {"max_concepts": 3}}},
    )
    assert len(_concepts(r)) == 3
    r = predict(
        "general-image-recognition",
        [image_input(raw)],
        alice.secret,
        model={"output_info": {"output_config": {"min_value": 0.01}}},
    )
    kept = _concepts(r)
    assert kept
    assert all(c["value"] >= 0.01 for c in kept)
    assert len(kept) < 20


def test_select_concepts_reaches_any_class_even_an_unlikely_one(predict, alice):
    r = predict(
        "general-image-recognition",
        [image_input(photos.photo("coffee"))],
        alice.secret,
        model={"output_info": {"output_config": {"select_concepts": [{"id": photos.TABBY_CAT}]}}},
    )
    [only] = _concepts(r)
    assert only["id"] == photos.TABBY_CAT
    assert only["name"] == "tabby cat"
    assert only["value"] < 0.01


def test_get_model_lists_the_1000_imagenet_concepts_with_ids_and_names(api, bob):
    r = api.get(f"{MAIN}/models/general-image-recognition", key=bob.secret)
    assert r["status"]["code"] == 10000, r
    concepts = r["model"]["output_info"]["data"]["concepts"]
    assert len(concepts) == 1000
    assert len({c["id"] for c in concepts}) == 1000
    assert len({c["name"] for c in concepts}) == 1000  # the two duplicated curated names differ
    by_id = {c["id"]: c["name"] for c in concepts}
    assert by_id[photos.ESPRESSO] == "espresso"
    assert by_id[photos.TABBY_CAT] == "tabby cat"
    assert r["model"]["model_version"]["metadata"] == {
        "runner": "builtin:general-image-recognition"
    }
    assert "EfficientNet-Lite0" in r["model"]["description"]


def test_a_batch_is_classified_input_by_input(predict, alice):
    r = predict(
        "general-image-recognition",
        [
            image_input(photos.photo("coffee")),
            image_input(photos.photo("chelsea")),
            text_input("not an image"),
        ],
        alice.secret,
    )
    assert r["status"]["code"] == 10010  # mixed: the text input fails alone
    assert _top_ids(r, 1, 0) == [photos.ESPRESSO]
    assert set(_top_ids(r, 3, 1)) == photos.CATS
    assert r["outputs"][2]["status"]["code"] == 30104
    assert "takes an image" in r["outputs"][2]["status"]["details"]


# -- the page's alias ----------------------------------------------------------------------------


def test_the_product_pages_model_url_and_version_predict_for_any_user(api, bob):
    body = {"inputs": [image_input(photos.photo("coffee"))]}
    r = api.post(f"{ALIAS}/versions/{GENERAL_VERSION}/outputs", body, key=bob.secret)
    assert r["status"]["code"] == 10000, r
    assert r["outputs"][0]["model"]["id"] == "general-image-recognition"
    assert r["outputs"][0]["model"]["model_version"]["id"] == GENERAL_VERSION
    assert r["outputs"][0]["data"]["concepts"][0]["id"] == photos.ESPRESSO
    got = api.get(f"{ALIAS}/versions/{GENERAL_VERSION}", key=bob.secret)
    assert got["status"]["code"] == 10000, got
    got = api.get(ALIAS, key=bob.secret)
    assert got["model"]["user_id"] == "clarifai"
    assert got["model"]["app_id"] == "main"
    assert got["model"]["model_version"]["id"] == GENERAL_VERSION


def test_the_page_version_id_also_names_the_builtin_model(api, bob):
    body = {"inputs": [image_input(photos.photo("coffee"))]}
    for path in (
        f"{MAIN}/models/general-image-recognition/versions/{GENERAL_VERSION}/outputs",
        f"/v2/models/general-image-recognition/versions/{GENERAL_VERSION}/outputs",
    ):
        r = api.post(path, body, key=bob.secret)
        assert r["status"]["code"] == 10000, (path, r)


def test_the_alias_cannot_be_changed_by_other_users(api, bob):
    r = api.post(
        "/v2/users/clarifai/apps/main/models",
        {"model": {"id": "mine", "model_type_id": "random-sample"}},
        key=bob.secret,
    )
    assert r["status"]["code"] != 10000
    assert not _alias_models().filter(public_id="mine").exists()


def _alias_models():
    from collectors_module.inference.models import Model

    return Model.objects.filter(app__owner__username="clarifai", app__public_id="main")


def test_alias_is_not_written_into_an_existing_real_account(db):
    from collectors_module.accounts.models import User
    from collectors_module.accounts.services import user_create
    from collectors_module.applications.models import App
    from collectors_module.inference.seed import ensure_builtin_models

    User.objects.filter(username="clarifai").delete()
    real, _ = user_create(user_id="clarifai", password="pw-for-tests-123", plan="community")
    ensure_builtin_models()
    assert not App.objects.filter(owner=real).exists()
    assert not _alias_models().exists()
    real.delete()
    ensure_builtin_models()  # the system account is made again when the id is free
    assert _alias_models().get().versions.get().public_id == GENERAL_VERSION
    system = User.objects.get(username="clarifai")
    assert not system.has_usable_password()


# -- the embedder --------------------------------------------------------------------------------


def _edits(name: str) -> dict[str, bytes]:
    img = photos.image(name)
    w, h = img.size
    stamped = img.copy()
    ImageDraw.Draw(stamped).text((10, 10), "SAMPLE 2024", fill="white", font=_font(30))
    return {
        "jpeg-q40": photos.encode(img, quality=40),
        "half-size": photos.encode(img.resize((w // 2, h // 2))),
        "crop-90%": photos.encode(img.crop((w // 20, h // 20, w - w // 20, h - h // 20))),
        "brighter": photos.encode(ImageEnhance.Brightness(img).enhance(1.3)),
        "mirrored": photos.encode(ImageOps.mirror(img)),
        "grey": photos.encode(ImageOps.grayscale(img)),
        "blurred": photos.encode(img.filter(ImageFilter.GaussianBlur(1.5))),
        "stamped": photos.encode(stamped),
    }


def _embed(predict, key, raws: list[bytes]) -> list[np.ndarray]:
    r = predict("general-image-embedding", [image_input(raw) for raw in raws], key)
    assert r["status"]["code"] == 10000, r
    return [_vector(r, i) for i in range(len(raws))]


def test_embedding_is_1280_values_l2_normalised(predict, alice):
    [v] = _embed(predict, alice.secret, [photos.photo("coffee")])
    assert v.shape == (1280,)
    assert abs(np.linalg.norm(v) - 1.0) < 1e-4
    assert (v >= 0).all()  # pooled ReLU6 features


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_edited_copies_score_above_and_other_photos_below_the_thresholds(predict, alice, name):
    edits = _edits(name)
    others = [n for n in photos.NAMES if n != name]
    vectors = _embed(
        predict,
        alice.secret,
        [photos.photo(name), *edits.values(), *(photos.photo(n) for n in others)],
    )
    original, rest = vectors[0], vectors[1:]
    edited = {label: float(original @ v) for label, v in zip(edits, rest, strict=False)}
    other = {n: float(original @ v) for n, v in zip(others, rest[len(edits) :], strict=True)}
    assert min(edited.values()) > EDITED_ABOVE, edited
    assert max(other.values()) < OTHER_BELOW, other


# -- the captioner -------------------------------------------------------------------------------


def test_caption_of_a_confident_photo_names_the_top_concept(predict, alice):
    r = predict(
        "general-english-image-caption", [image_input(photos.photo("coffee"))], alice.secret
    )
    assert _caption(r) == "a photo of an espresso"
    meta = r["outputs"][0]["data"]["metadata"]["caption"]
    assert meta["template"] is True
    assert meta["concepts"][0]["id"] == photos.ESPRESSO
    assert meta["ocr_text"] == ""


def test_caption_below_the_confidence_hedges_and_names_the_top_concept(predict, alice):
    raw = photos.photo("chelsea")
    top = _concepts(predict("general-image-recognition", [image_input(raw)], alice.secret))[0]
    assert top["value"] < 0.5
    caption = _caption(predict("general-english-image-caption", [image_input(raw)], alice.secret))
    assert caption.startswith("possibly ")
    assert top["name"] in caption


def test_caption_quotes_the_text_read_in_the_image(predict, alice):
    raw = with_banner("coffee", "GOOD MORNING")
    classified = predict("general-image-recognition", [image_input(raw)], alice.secret)
    top = _concepts(classified)[0]
    r = predict("general-english-image-caption", [image_input(raw)], alice.secret)
    caption = _caption(r)
    assert top["name"] in caption
    assert "GOOD" in caption.upper()
    assert "MORNING" in caption.upper()
    assert r["outputs"][0]["data"]["metadata"]["caption"]["ocr_text"]


def test_caption_of_a_text_only_image_leads_with_the_text(predict, alice):
    img = Image.new("RGB", (640, 200), (250, 250, 250))
    ImageDraw.Draw(img).text((40, 40), "STOP 42", fill=(10, 10, 10), font=_font(96))
    caption = _caption(
        predict("general-english-image-caption", [image_input(png(img))], alice.secret)
    )
    assert '"STOP 42"' in caption.replace("STOP42", "STOP 42")


def test_caption_model_describes_itself_as_template_captions(api, bob):
    r = api.get(
        f"{MAIN}/models/general-english-image-caption/versions/{CAPTION_VERSION}", key=bob.secret
    )
    assert r["status"]["code"] == 10000, r
    model = api.get(f"{MAIN}/models/general-english-image-caption", key=bob.secret)["model"]
    assert model["description"].startswith("Template captions, not a learned captioning model")
    assert model["model_type_id"] == "image-to-text"


@pytest.mark.parametrize(
    ("concepts", "text", "caption"),
    [
        ([("espresso", 0.95)], "", "a photo of an espresso"),
        ([("Egyptian Mau", 0.6)], "", "a photo of an Egyptian Mau"),
        ([("tabby cat", 0.4), ("tiger cat", 0.3)], "", "possibly a tabby cat or a tiger cat"),
        ([("tabby cat", 0.4), ("lynx", 0.1)], "", "possibly a tabby cat"),
        ([("sunglasses", 0.7)], "", "a photo of sunglasses"),
        (
            [("traffic or street sign", 0.8)],
            "STOP\n42",
            'a photo of a traffic or street sign reading "STOP 42"',
        ),
        ([("espresso", 0.9)], "OPEN", 'a photo of an espresso, with the text "OPEN"'),
        (
            [("digital clock", 0.07)],
            "HELLO 42",
            'an image with the text "HELLO 42" (perhaps a digital clock)',
        ),
        ([], "", "an image"),
    ],
)
def test_compose_caption_templates(concepts, text, caption):
    assert compose_caption(concepts, text) == caption


def test_long_text_is_cut_at_a_word():
    caption = compose_caption([("menu", 0.9)], "word " * 40)
    quoted = caption.split('"')[1]
    assert quoted.endswith("…")
    assert len(quoted) <= 81
    assert "wor…" not in quoted


def test_articles():
    assert with_article("umbrella") == "an umbrella"
    assert with_article("unicycle") == "a unicycle"
    assert with_article("one-piece bathing suit") == "a one-piece bathing suit"
    assert with_article("hourglass") == "an hourglass"
    assert with_article("jeans") == "jeans"


# -- bad input -----------------------------------------------------------------------------------

MODELS = ("general-image-recognition", "general-image-embedding", "general-english-image-caption")


def _gif_first_frame_coffee() -> bytes:
    first = photos.image("coffee").resize((300, 200))
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 300, 3), np.uint8))
    buf = io.BytesIO()
    first.save(buf, format="GIF", save_all=True, append_images=[noise, noise], duration=100)
    return buf.getvalue()


def _odd_images() -> dict[str, bytes]:
    coffee = photos.image("coffee")
    rgba = coffee.convert("RGBA")
    rgba.putalpha(Image.new("L", coffee.size, 128))
    sixteen = Image.fromarray(np.asarray(coffee.convert("L"), np.uint16) * 257)
    return {
        "1x1": png(Image.new("RGB", (1, 1), "red")),
        "3x500": png(Image.new("RGB", (3, 500), "blue")),
        "grey": photos.encode(coffee.convert("L")),
        "cmyk-jpeg": photos.encode(coffee.convert("CMYK")),
        "palette": png(coffee.convert("P", palette=Image.Palette.ADAPTIVE)),
        "alpha": png(rgba),
        "la": png(coffee.convert("LA")),
        "16-bit": png(sixteen),
        "fully-transparent": png(Image.new("RGBA", (40, 40), (0, 0, 0, 0))),
        "gif": _gif_first_frame_coffee(),
        "webp": photos.encode(coffee, "WEBP"),
        "bmp": photos.encode(coffee, "BMP"),
        "tiff": photos.encode(coffee, "TIFF"),
    }


@pytest.mark.parametrize("model_id", MODELS)
def test_odd_but_valid_images_get_a_result(predict, alice, model_id):
    odd = _odd_images()
    r = predict(model_id, [image_input(raw) for raw in odd.values()], alice.secret)
    assert r["_http"] == 200, r
    codes = {name: o["status"]["code"] for name, o in zip(odd, r["outputs"], strict=True)}
    assert set(codes.values()) == {10000}, codes


@pytest.mark.parametrize(
    "name", ["grey", "cmyk-jpeg", "palette", "alpha", "16-bit", "gif", "webp", "tiff"]
)
def test_other_encodings_of_the_espresso_still_read_as_espresso(predict, alice, name):
    raw = _odd_images()[name]
    r = predict("general-image-recognition", [image_input(raw)], alice.secret)
    assert photos.ESPRESSO in _top_ids(r, 3), (name, _concepts(r)[:3])


def test_a_huge_photo_is_classified(predict, alice):
    big = photos.image("coffee").resize((6000, 4000), Image.Resampling.BILINEAR)
    r = predict("general-image-recognition", [image_input(photos.encode(big))], alice.secret)
    assert photos.ESPRESSO in _top_ids(r, 3)


@pytest.mark.parametrize("model_id", MODELS)
def test_truncated_and_broken_files_get_a_clear_status(predict, alice, model_id):
    jpeg = photos.photo("coffee")
    gif = _gif_first_frame_coffee()
    broken = {
        "truncated-jpeg": jpeg[: len(jpeg) // 2],
        "truncated-png": photos.photo("coffee", "PNG")[:5000],
        "truncated-gif": gif[: len(gif) // 3],
        "not-an-image": b"hello, this is plain text",
        "jpeg-header-only": jpeg[:600],
    }
    inputs = [{"data": {"image": {"base64": b64(raw)}}} for raw in broken.values()]
    r = predict(model_id, inputs, alice.secret)
    assert r["_http"] in (200, 400), r
    for name, out in zip(broken, r["outputs"], strict=True):
        assert out["status"]["code"] in (30104, 30300), (name, out["status"])
        assert out["status"].get("details") or out["status"].get("description"), name


def test_corrupt_scan_data_after_a_valid_header_is_a_clear_status(predict, alice):
    jpeg = bytearray(photos.photo("coffee"))
    start = jpeg.find(b"\xff\xda") + 20
    jpeg[start : start + 3000] = b"\xff" * 3000  # garbage inside the scan, end marker kept
    r = predict("general-image-recognition", [image_input(bytes(jpeg))], alice.secret)
    assert r["_http"] in (200, 400)
    assert r["outputs"][0]["status"]["code"] in (10000, 30104, 30300)
