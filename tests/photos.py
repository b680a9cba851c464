"""Real photos for the image-model tests, from scikit-image's sample data (installed as a test
dependency; the photos ship inside the package, nothing is downloaded):

- `chelsea`: Chelsea the cat, by Stefan van der Walt, CC0;
- `coffee`: a cup of coffee, by Rachel Michetti, CC0;
- `rocket`: a SpaceX Falcon 9 launch, released into the public domain by SpaceX;
- `astronaut`: astronaut Eileen Collins, NASA, public domain.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

NAMES = ("chelsea", "coffee", "rocket", "astronaut")

# WordNet ids of the ImageNet classes the tests expect.
ESPRESSO = "n07920052"
TABBY_CAT = "n02123045"
TIGER_CAT = "n02123159"
EGYPTIAN_CAT = "n02124075"
SPACE_SHUTTLE = "n04266014"
MISSILE = "n03773504"
PROJECTILE = "n04008634"
CATS = {TABBY_CAT, TIGER_CAT, EGYPTIAN_CAT}


@functools.cache
def array(name: str) -> np.ndarray:
    import skimage.data

    if name not in NAMES:
        raise ValueError(name)
    return getattr(skimage.data, name)()


def image(name: str) -> Image.Image:
    return Image.fromarray(array(name))


def encode(img: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        img = img.convert("RGB")
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}) | options)
    return buf.getvalue()


@functools.cache
def photo(name: str, fmt: str = "JPEG") -> bytes:
    """The sample photo `name` encoded as `fmt`."""
    return encode(image(name), fmt)
