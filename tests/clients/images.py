"""Test images for the client scripts, made here (the product's venv has Pillow and OpenCV)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def solid(color: str, size=(8, 8)) -> bytes:
    return png(Image.new("RGB", size, color))


def text_png(text: str) -> bytes:
    img = Image.new("RGB", (520, 140), "white")
    ImageDraw.Draw(img).text((20, 40), text, fill="black", font=ImageFont.load_default(size=48))
    return png(img)


def qr_png(payload: str) -> bytes:
    code = cv2.QRCodeEncoder.create().encode(payload)
    code = cv2.resize(code, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
    canvas = np.full((400, 600), 255, dtype=np.uint8)
    canvas[100 : 100 + code.shape[0], 300 : 300 + code.shape[1]] = code
    return png(Image.fromarray(canvas))


def write_images(folder: Path) -> dict[str, str]:
    """{name: path} of the images the scripts read."""
    files = {
        "red_png": solid("red"),
        "blue_png": solid("blue"),
        "ocr_png": text_png("HELLO 42"),
        "qr_png": qr_png("collectors-sdk-qr"),
    }
    out = {}
    for name, content in files.items():
        path = folder / f"{name}.png"
        path.write_bytes(content)
        out[name] = str(path)
    return out
