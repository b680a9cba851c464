"""Content fingerprints for near-duplicate suppression: pure functions of bytes and text.

- `exact`: sha256 of the bytes (the inputs app's `content_hash`);
- `text`: sha256 of the text normalised (Unicode NFKC, case-folded, runs of whitespace made one
  space, stripped), so "Hello  World" and "hello world\n" match;
- `phash`: the 64-bit DCT perceptual hash of an image (`imagehash.phash`, 8x8 of a 32x32
  greyscale copy), equal or a few bits apart for the same picture re-encoded, resized or with a
  few pixels changed; stored as a signed 64-bit integer, and split into four 16-bit `bands`.
  A flat picture (one colour) gets none: all of them share one pHash whatever the colour.

Pigeonhole: two hashes at Hamming distance d differ in at most d of the 64 bits, so some band
differs in at most d // 4 bits. A lookup probes, per band, every value within d // 4 bits of the
query's band (1 value for d <= 3, 17 for d <= 7, 137 for d <= 11) through an index, then
measures the distance on the candidates found: exact, and never a scan.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import unicodedata

import imagehash
from PIL import Image, ImageStat, UnidentifiedImageError

MAX_DISTANCE = 11  # d // 4 <= 2: at most 137 probes per band
_WS = re.compile(r"\s+")
_DECODE_MAX_PIXELS = 40_000_000
FLAT_STDDEV = 2.0  # grey levels: below this a picture is flat and gets no pHash (exact hash only)


def exact(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def normalise_text(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text(value: str) -> str:
    """sha256 of the normalised text ("" for a text that normalises to nothing)."""
    norm = normalise_text(value)
    return hashlib.sha256(norm.encode("utf-8", "surrogatepass")).hexdigest() if norm else ""


def to_signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def phash(raw: bytes) -> int | None:
    """The perceptual hash of an image as a signed 64-bit int; None when it is not an image."""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > _DECODE_MAX_PIXELS:
                return None
            img.draft("L", (256, 256))  # JPEG: decode at a reduced size, much faster
            grey = img.convert("L")
            if ImageStat.Stat(grey.resize((32, 32))).stddev[0] < FLAT_STDDEV:
                return None  # a flat picture: every flat picture has the same pHash
            h = imagehash.phash(grey)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    bits = 0
    for bit in h.hash.flatten():
        bits = (bits << 1) | int(bool(bit))
    return to_signed(bits)


def bands(signed_hash: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands (high to low) of a hash, each 0..65535."""
    u = to_unsigned(signed_hash)
    return tuple((u >> shift) & 0xFFFF for shift in (48, 32, 16, 0))  # type: ignore[return-value]


def distance(a: int, b: int) -> int:
    return (to_unsigned(a) ^ to_unsigned(b)).bit_count()


def probes(band: int, radius: int) -> list[int]:
    """Every 16-bit value within `radius` bits of `band` (itself first)."""
    out = [band]
    for r in range(1, radius + 1):
        for bits in itertools.combinations(range(16), r):
            v = band
            for b in bits:
                v ^= 1 << b
            out.append(v)
    return out


__all__ = [
    "MAX_DISTANCE",
    "bands",
    "distance",
    "exact",
    "normalise_text",
    "phash",
    "probes",
    "text",
    "to_signed",
    "to_unsigned",
]
