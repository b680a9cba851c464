"""Each built-in model computes real outputs on inputs the tests make."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .conftest import image_input, png, solid, text_image, text_input


def _concepts(output):
    return {c["id"]: c["value"] for c in output["data"].get("concepts", [])}


def test_red_square_is_recognised_as_red(predict, alice):
    r = predict("color-recognition", [image_input(solid((220, 20, 30)))], alice.secret)
    assert r["status"]["code"] == 10000, r
    concepts = r["outputs"][0]["data"]["concepts"]
    assert concepts[0]["id"] == "red"
    assert concepts[0]["value"] > 0.99


def test_colour_shares_follow_pixel_counts(predict, alice):
    img = Image.new("RGB", (100, 100), (0, 0, 255))
    img.paste((255, 255, 0), (0, 0, 100, 25))  # a quarter yellow
    r = predict("color-recognition", [image_input(png(img))], alice.secret)
    shares = _concepts(r["outputs"][0])
    assert abs(shares["blue"] - 0.75) < 0.03
    assert abs(shares["yellow"] - 0.25) < 0.03
    assert "red" not in shares


def test_colour_model_ignores_transparent_pixels(predict, alice):
    img = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    img.paste((0, 200, 0, 255), (0, 0, 10, 50))
    shares = _concepts(
        predict("color-recognition", [image_input(png(img))], alice.secret)["outputs"][0]
    )
    assert list(shares) == ["green"]


def test_ocr_reads_back_drawn_text(predict, alice):
    r = predict("ocr", [image_input(text_image("HELLO 42"))], alice.secret)
    assert r["status"]["code"] == 10000, r
    out = r["outputs"][0]["data"]
    assert out["text"]["raw"].replace(" ", "") == "HELLO42"
    region = out["regions"][0]
    assert region["data"]["text"]["raw"].replace(" ", "") == "HELLO42"
    box = region["region_info"]["bounding_box"]
    assert 0 <= box["left_col"] < box["right_col"] <= 1
    assert 0 <= box["top_row"] < box["bottom_row"] <= 1


def test_ocr_orders_lines_top_to_bottom(predict, alice):
    from PIL import ImageDraw, ImageFont

    img = Image.new("RGB", (520, 260), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=44)
    draw.text((20, 30), "FIRST LINE", fill="black", font=font)
    draw.text((20, 160), "SECOND 7", fill="black", font=font)
    r = predict("ocr", [image_input(png(img))], alice.secret)
    lines = r["outputs"][0]["data"]["text"]["raw"].split("\n")
    assert [line.replace(" ", "") for line in lines] == ["FIRSTLINE", "SECOND7"]


def test_ocr_on_blank_image_returns_no_text(predict, alice):
    r = predict("ocr", [image_input(solid("white", (200, 100)))], alice.secret)
    assert r["status"]["code"] == 10000
    assert r["outputs"][0]["data"].get("text", {}).get("raw", "") == ""


def test_sentiment_of_positive_negative_and_neutral_text(predict, alice):
    r = predict(
        "sentiment",
        [
            text_input("I love this"),
            text_input("I hate this, it is awful"),
            text_input("The table is brown"),
        ],
        alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    tops = [o["data"]["concepts"][0]["id"] for o in r["outputs"]]
    assert tops == ["positive", "negative", "neutral"]
    vader = r["outputs"][0]["data"]["metadata"]["vader"]
    assert vader["compound"] > 0.5
    values = _concepts(r["outputs"][0])
    assert abs(sum(values.values()) - 1.0) < 1e-6


def test_qr_code_is_found_and_decoded(predict, alice):
    code = cv2.QRCodeEncoder.create().encode("collectors-qr-42")
    code = cv2.resize(code, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
    canvas = np.full((400, 600), 255, dtype=np.uint8)
    canvas[100 : 100 + code.shape[0], 300 : 300 + code.shape[1]] = code
    r = predict("qr-code", [image_input(png(Image.fromarray(canvas)))], alice.secret)
    assert r["status"]["code"] == 10000, r
    data = r["outputs"][0]["data"]
    assert data["text"]["raw"] == "collectors-qr-42"
    box = data["regions"][0]["region_info"]["bounding_box"]
    assert box["left_col"] >= 0.45
    assert box["right_col"] <= 0.9
    assert data["regions"][0]["data"]["concepts"][0]["id"] == "qr-code"


def test_qr_model_finds_nothing_in_a_plain_image(predict, alice):
    r = predict("qr-code", [image_input(solid("gray"))], alice.secret)
    assert r["status"]["code"] == 10000
    assert r["outputs"][0]["data"].get("regions", []) == []


def test_image_model_given_text_fails_that_input(predict, alice):
    r = predict("color-recognition", [text_input("red")], alice.secret)
    assert r["outputs"][0]["status"]["code"] == 30104
    assert "takes an image" in r["outputs"][0]["status"]["details"]


def test_jpeg_input_is_accepted(predict, alice):
    r = predict(
        "color-recognition",
        [image_input(solid((10, 30, 230), (300, 200), fmt="JPEG"))],
        alice.secret,
    )
    assert r["outputs"][0]["data"]["concepts"][0]["id"] == "blue"
