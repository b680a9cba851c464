"""core.images: sniffing, caps before decoding, truncated/polyglot refusal, strict base64."""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib

import pytest
from PIL import Image

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.images import decode_base64, validate_image


def encode(fmt: str, size=(32, 24), color=(200, 30, 30), **kw) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but carries almost no data (a pixel flood)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def code_of(data: bytes) -> int:
    with pytest.raises(ApiError) as exc:
        validate_image(data)
    return exc.value.code


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_every_supported_format_is_accepted_with_its_size_and_mime(fmt, mime):
    info = validate_image(encode(fmt, size=(40, 30)))
    assert (info.format, info.width, info.height, info.mime) == (fmt, 40, 30, mime)


def test_empty_bytes_are_invalid_bytes():
    assert code_of(b"") == SC.ALL_INPUT_INVALID_BYTES


@pytest.mark.parametrize(
    "data",
    [
        b"hello world",
        b"<html><script>alert(1)</script></html>",
        b"%PDF-1.7\n",
        b"PK\x03\x04zip",
        b"\x00" * 100,
    ],
)
def test_non_images_are_invalid_bytes(data):
    assert code_of(data) == SC.ALL_INPUT_INVALID_BYTES


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_truncated_images_are_invalid_bytes(fmt):
    data = encode(fmt, size=(64, 64), color=(10, 200, 90))
    # Keep the header, drop most of the pixel data.
    assert code_of(data[: max(40, len(data) // 2)]) == SC.ALL_INPUT_INVALID_BYTES


def test_truncated_noisy_jpeg_is_invalid_bytes():
    noise = Image.effect_noise((256, 256), 80).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    assert validate_image(data).format == "JPEG"
    assert code_of(data[: len(data) * 2 // 3]) == SC.ALL_INPUT_INVALID_BYTES


def test_polyglot_with_one_magic_and_another_body_is_invalid_bytes():
    # PNG magic followed by a GIF: Pillow may only use the PNG plugin, which refuses it.
    assert code_of(b"\x89PNG\r\n\x1a\n" + encode("GIF")) == SC.ALL_INPUT_INVALID_BYTES
    # JPEG magic followed by HTML.
    assert code_of(b"\xff\xd8\xff\xe0" + b"<html>" * 50) == SC.ALL_INPUT_INVALID_BYTES


def test_png_with_corrupt_chunk_crc_is_invalid_bytes():
    data = bytearray(encode("PNG", size=(16, 16)))
    data[-20] ^= 0xFF  # flips a byte inside IDAT, so its CRC no longer matches
    assert code_of(bytes(data)) == SC.ALL_INPUT_INVALID_BYTES


def test_too_many_bytes_is_invalid_argument_before_decoding(settings):
    settings.MAX_IMAGE_BYTES = 1000
    data = encode("BMP", size=(40, 40))
    assert len(data) > 1000
    with pytest.raises(ApiError) as exc:
        validate_image(data)
    assert exc.value.code == SC.INPUT_INVALID_ARGUMENT
    assert "limit" in exc.value.details


def test_default_byte_limit_is_twenty_megabytes():
    data = b"\xff\xd8\xff" + b"\x00" * (20 * 10**6)
    assert code_of(data) == SC.INPUT_INVALID_ARGUMENT


def test_pixel_flood_is_refused_from_the_header_quickly():
    data = png_with_header(100_000, 100_000)  # 10 gigapixels in ~100 bytes
    started = time.perf_counter()
    with pytest.raises(ApiError) as exc:
        validate_image(data)
    assert time.perf_counter() - started < 1.0
    assert exc.value.code == SC.INPUT_INVALID_ARGUMENT
    assert "pixels" in exc.value.details


def test_just_over_the_pixel_limit_is_invalid_argument():
    # 85,000,001 pixels: over the limit but under Pillow's 2x hard error, so our own check decides.
    assert code_of(png_with_header(85_000_001, 1)) == SC.INPUT_INVALID_ARGUMENT


def test_pixel_limit_follows_the_setting(settings):
    settings.MAX_IMAGE_PIXELS = 100
    assert code_of(encode("PNG", size=(11, 10))) == SC.INPUT_INVALID_ARGUMENT
    assert validate_image(encode("PNG", size=(10, 10))).width == 10


def test_zero_size_header_is_invalid_bytes():
    assert code_of(png_with_header(0, 10)) == SC.ALL_INPUT_INVALID_BYTES


def test_decode_base64_accepts_standard_base64_with_whitespace():
    raw = encode("PNG")
    text = base64.b64encode(raw).decode()
    wrapped = "\n".join(text[i : i + 60] for i in range(0, len(text), 60)) + "\n"
    assert decode_base64(wrapped) == raw
    assert decode_base64(text.encode()) == raw


@pytest.mark.parametrize(
    "value",
    ["", "   ", "abc", "not base64!!", "aGVsbG8=aGVsbG8=x", "aGVsbG8-_w==", "é", b"\xff\xfe"],
)
def test_decode_base64_refuses_malformed_text(value):
    with pytest.raises(ApiError) as exc:
        decode_base64(value)
    assert exc.value.code == SC.ALL_INPUT_INVALID_BYTES


def test_decode_base64_refuses_oversized_text_before_decoding(settings):
    settings.MAX_IMAGE_BYTES = 30
    with pytest.raises(ApiError) as exc:
        decode_base64(base64.b64encode(b"x" * 100))
    assert exc.value.code == SC.INPUT_INVALID_ARGUMENT
    assert decode_base64(base64.b64encode(b"x" * 30)) == b"x" * 30


def test_jpeg_with_data_after_the_end_marker_is_accepted():
    # Motion photos and some cameras append data after the JPEG's end-of-image marker.
    data = encode("JPEG", size=(64, 48)) + b"ftypmp42" + b"\x00" * 500
    assert validate_image(data).format == "JPEG"


def test_validating_a_large_jpeg_does_not_decode_it():
    noise = Image.effect_noise((4000, 3000), 40).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    started = time.perf_counter()
    for _ in range(5):
        validate_image(data)
    assert (time.perf_counter() - started) / 5 < 0.05  # a full decode takes over 100 ms here
