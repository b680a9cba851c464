"""The built-in models: offline runners whose weights or data ship inside installed packages.

`CATALOG` is the single list the registry, the seed migration and the docs read. Version ids are
fixed so docs, tests and collectors can name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module

BUILTIN_USER_ID = "builtin"
BUILTIN_APP_ID = "main"


@dataclass(frozen=True)
class BuiltinModel:
    name: str  # runner "builtin:<name>"
    model_id: str
    version_id: str  # 32 hex, fixed
    model_type_id: str
    title: str
    description: str
    concepts: tuple[str, ...] = ()
    runner_path: str = ""  # "module:Class" under this package
    input_fields: tuple[str, ...] = field(default=("image",))

    @property
    def runner(self) -> str:
        return f"builtin:{self.name}"

    def load(self):
        module_name, cls_name = self.runner_path.split(":")
        cls = getattr(import_module(f"{__name__}.{module_name}"), cls_name)
        return cls()


COLOR_NAMES = (
    "red",
    "orange",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "gray",
    "white",
)

CATALOG: tuple[BuiltinModel, ...] = (
    BuiltinModel(
        name="color-recognition",
        model_id="color-recognition",
        version_id="b13a9cff8522d90a1d8d6902fce2dc9a",
        model_type_id="visual-classifier",
        title="Color recognition",
        description=(
            "Names the dominant colours of an image. Every pixel (of a copy scaled to at most "
            "128x128, transparent pixels ignored) is assigned one of 12 basic colour names from its "
            "hue, saturation and brightness; each concept's value is the share of pixels with that "
            "colour. Pure Pillow + numpy, no learned weights."
        ),
        concepts=COLOR_NAMES,
        runner_path="colors:ColorRecognitionRunner",
    ),
    BuiltinModel(
        name="ocr",
        model_id="ocr",
        version_id="d125d1fd7a154cb340911da59b9da69e",
        model_type_id="image-to-text",
        title="Text recognition (OCR)",
        description=(
            "Reads printed text in an image with PP-OCRv4 detection and recognition models run by "
            "ONNX Runtime (weights ship in the rapidocr-onnxruntime package). Returns the text, line "
            "by line top to bottom, in data.text.raw and one region per line with its box, text and "
            "confidence."
        ),
        runner_path="ocr:OcrRunner",
    ),
    BuiltinModel(
        name="sentiment",
        model_id="sentiment",
        version_id="996e3c70d6372b1e7e3c10875ebd2b8b",
        model_type_id="text-classifier",
        title="Sentiment (VADER)",
        description=(
            "Classifies English text as positive, negative or neutral with the VADER lexicon and "
            "rules (lexicon ships in the vaderSentiment package). Concept values are a softmax "
            "over VADER's compound score with its usual +/-0.05 neutral band; the raw VADER scores "
            "are in data.metadata.vader."
        ),
        concepts=("positive", "negative", "neutral"),
        runner_path="sentiment:SentimentRunner",
        input_fields=("text",),
    ),
    BuiltinModel(
        name="qr-code",
        model_id="qr-code",
        version_id="b159573068200315da4aa4ccee89ba42",
        model_type_id="visual-detector",
        title="QR code reader",
        description=(
            "Finds and decodes QR codes with OpenCV's QR detector (no learned weights). One region "
            "per code, with its box, the concept 'qr-code' and the decoded payload in the region's "
            "data.text.raw; data.text.raw of the output joins the payloads."
        ),
        concepts=("qr-code",),
        runner_path="qr:QrCodeRunner",
    ),
)

BY_NAME: dict[str, BuiltinModel] = {m.name: m for m in CATALOG}
