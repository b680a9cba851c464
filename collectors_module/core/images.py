"""Image bytes we accept: sniffed, size- and pixel-capped before decoding, structurally checked.

Every path that takes image bytes (predict, PostInputs, the capture worker) calls
`validate_image` before anything decodes the pixels. Pure: no ORM, no network.

Order of checks (cheapest first, nothing expensive before the caps):
1. empty -> ALL_INPUT_INVALID_BYTES; more than MAX_IMAGE_BYTES -> INPUT_INVALID_ARGUMENT;
2. the format is sniffed from the magic bytes (JPEG, PNG, GIF, WEBP, BMP, TIFF) and Pillow is
   only allowed to use that one plugin, so a file cannot claim one format and parse as another;
3. `Image.open` reads the header only: width x height over MAX_IMAGE_PIXELS ->
   INPUT_INVALID_ARGUMENT (Pillow's own decompression-bomb limit is set to the same value);
4. `verify()` plus a cheap completeness check per format (see `_check_complete`), so truncated
   files are refused here instead of failing inside a runner, without decoding JPEG/WEBP twice.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import ctypes.util
import io
import threading
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, ImageFile, UnidentifiedImageError

from .errors import SC, ApiError

DEFAULT_MAX_IMAGE_BYTES = 20 * 10**6
DEFAULT_MAX_IMAGE_PIXELS = 85_000_000

MIME_BY_FORMAT = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's format name: "JPEG", "PNG", ...
    width: int
    height: int
    mime: str


def max_image_bytes() -> int:
    return int(getattr(settings, "MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES))


def max_image_pixels() -> int:
    return int(getattr(settings, "MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS))


def max_request_pixels() -> int:
    """Pixels of all the images of one request together (IMAGE_MAX_PIXELS_PER_REQUEST)."""
    return int(settings.IMAGE_MAX_PIXELS_PER_REQUEST)


_decode_lock = threading.Lock()
_decode_slots: tuple[int, threading.BoundedSemaphore] | None = None


@contextlib.contextmanager
def decode_slot():
    """Hold one of IMAGE_DECODE_CONCURRENCY slots while decoding pixels: the memory of image
    work in a process is bounded by that many full-size decodes at once, however many requests
    arrive (the rest wait their turn)."""
    global _decode_slots
    size = max(1, int(settings.IMAGE_DECODE_CONCURRENCY))
    with _decode_lock:
        if _decode_slots is None or _decode_slots[0] != size:
            if _decode_slots is None:
                _return_freed_pixels_to_the_os()
            _decode_slots = (size, threading.BoundedSemaphore(size))
        slots = _decode_slots[1]
    with slots:
        yield


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def _return_freed_pixels_to_the_os() -> None:
    """Pillow keeps pixels in 16 MB blocks from malloc. glibc raises its mmap threshold after
    the first such block is freed, so later blocks come from per-thread heaps that keep freed
    memory: every request thread then holds a full image's worth for good (measured: 4
    concurrent requests of two 9,200 x 9,200 PNGs, 2.6 GB). A fixed 1 MiB threshold keeps big
    blocks mmapped, returned to the OS on free, so peak RSS follows IMAGE_DECODE_CONCURRENCY.
    No-op off glibc."""
    with contextlib.suppress(Exception):  # no glibc, or no mallopt: nothing to tune
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def decode_reduced(raw: bytes, target: int) -> Image.Image:
    """Decode `raw` so its shorter side is still >= `target` where the format allows it cheaply:
    JPEG decodes at 1/2, 1/4 or 1/8 scale (draft); other formats decode at full size and are
    reduced by an integer factor at once (Image.reduce), before any copy is made. The caller
    holds a `decode_slot()`."""
    img = Image.open(io.BytesIO(raw))
    if img.format == "JPEG":
        img.draft("RGB", (target, target))
    img.load()
    factor = min(img.size) // max(1, target)
    if factor >= 2:
        try:
            reduced = img.reduce(factor)
        except ValueError:  # modes reduce() does not take (palette, 1-bit, 16-bit ...)
            size = (max(1, img.width // factor), max(1, img.height // factor))
            reduced = img.resize(size, Image.Resampling.NEAREST)
        img.close()
        img = reduced
    return img


def _apply_pillow_limits() -> None:
    # Process-wide: anything else that decodes with Pillow inherits the same bomb limit
    # (Pillow warns above it and raises DecompressionBombError above twice it).
    Image.MAX_IMAGE_PIXELS = max_image_pixels()
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def sniff_format(data: bytes) -> str | None:
    """The format named by the magic bytes, or None."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    return None


def _invalid(reason: str) -> ApiError:
    return ApiError(SC.ALL_INPUT_INVALID_BYTES, reason)


def validate_image(data: bytes) -> ImageInfo:
    """Check `data` is one acceptable image and return its format and size (see module doc)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _invalid("image bytes are missing")
    data = bytes(data)
    if not data:
        raise _invalid("image bytes are empty")
    limit = max_image_bytes()
    if len(data) > limit:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            f"image is {len(data)} bytes; the limit is {limit} bytes",
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise _invalid("not a supported image (JPEG, PNG, GIF, WEBP, BMP or TIFF)")

    _apply_pillow_limits()
    pixel_limit = max_image_pixels()
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:  # header only
            width, height = im.size
    except Image.DecompressionBombError as exc:
        raise ApiError(SC.INPUT_INVALID_ARGUMENT, f"image has too many pixels: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _invalid(f"cannot read the {fmt} header: {exc}") from exc
    except Exception as exc:  # a broken header must never become a 500
        raise _invalid(f"cannot read the {fmt} header") from exc

    if width <= 0 or height <= 0:
        raise _invalid(f"{fmt} header gives an empty size {width}x{height}")
    if width * height > pixel_limit:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            f"image is {width}x{height} = {width * height} pixels; the limit is {pixel_limit}",
        )

    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            scan_offset = _first_tile_offset(im)
            im.verify()
        _check_complete(fmt, data, scan_offset)
    except ApiError:
        raise
    except Image.DecompressionBombError as exc:
        raise ApiError(SC.INPUT_INVALID_ARGUMENT, f"image has too many pixels: {exc}") from exc
    except Exception as exc:  # truncated, corrupt, or a polyglot that only looks like an image
        raise _invalid(f"{fmt} data is truncated or corrupt: {exc}") from exc

    return ImageInfo(format=fmt, width=width, height=height, mime=MIME_BY_FORMAT[fmt])


def _first_tile_offset(im) -> int:
    try:
        return int(im.tile[0][2])
    except (IndexError, TypeError, ValueError):
        return 0


def _check_complete(fmt: str, data: bytes, scan_offset: int) -> None:
    """Cheap completeness checks, so predict does not decode every image twice:
    PNG -- verify() already walked every chunk CRC up to IEND;
    JPEG -- an end-of-image marker after the start of the main scan (trailing data after it,
    as in motion photos, is allowed);
    WEBP -- the RIFF container is as long as its header says;
    GIF, BMP, TIFF -- the first frame is decoded (bounded by the pixel limit; BMP is a copy)."""
    if fmt == "PNG":
        return
    if fmt == "JPEG":
        if data.rfind(b"\xff\xd9") <= scan_offset:
            raise _invalid("JPEG data is truncated: no end-of-image marker after the scan")
        return
    if fmt == "WEBP":
        if int.from_bytes(data[4:8], "little") + 8 > len(data):
            raise _invalid("WEBP data is truncated: shorter than its RIFF header says")
        return
    with Image.open(io.BytesIO(data), formats=[fmt]) as im:
        im.load()


def decode_base64(value: str | bytes) -> bytes:
    """Strict base64 (standard alphabet, correct padding; whitespace ignored) -> raw bytes.

    Invalid text -> ALL_INPUT_INVALID_BYTES; text that would decode to more than
    MAX_IMAGE_BYTES -> INPUT_INVALID_ARGUMENT (checked before decoding).
    """
    if isinstance(value, str):
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError as exc:
            raise _invalid("base64 contains non-ASCII characters") from exc
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    else:
        raise _invalid("base64 value is missing")
    compact = b"".join(raw.split())
    if not compact:
        raise _invalid("base64 value is empty")
    limit = max_image_bytes()
    if len(compact) // 4 * 3 > limit + 3:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            f"base64 value decodes to more than the {limit}-byte image limit",
        )
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(f"invalid base64: {exc}") from exc
