"""Peak RSS of one process predicting with large PNGs concurrently (issue 15, finding 5).

Builds the 9,200 x 9,200 PNG of the review (a few hundred KB), then runs REQUESTS concurrent
"requests" of IMAGES images each through what a predict request does with image bytes:
`inference.services.prepare_inputs` (validation, the per-request pixel budget) and a built-in
runner's decode (`builtin:color-recognition` and the image-recognition preprocessing). Prints the
process's peak RSS before and after, and the statuses. Usage:

    COLLECTORS_DEV=1 .venv/bin/python scripts/bench_decode_memory.py [REQUESTS] [IMAGES] [PNG]

The PNG is made by a child process (making it costs a full-size image), so the peak RSS printed
is the cost of serving, not of making the test image.
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collectors_module.settings")
os.environ.setdefault("COLLECTORS_DEV", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import django

django.setup()

from clarifai_grpc.grpc.api import resources_pb2  # noqa: E402
from PIL import Image  # noqa: E402

from collectors_module.core.errors import ApiError  # noqa: E402
from collectors_module.inference.runners.builtin.imagenet import preprocess  # noqa: E402
from collectors_module.inference.runners.registry import get_runner  # noqa: E402
from collectors_module.inference.services import prepare_inputs  # noqa: E402


def big_png(side: int = 9200) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (side, side), (30, 120, 200))
    img.paste((200, 30, 30), (0, 0, side // 2, side // 2))
    img.save(buf, "PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def png_file() -> str:
    """The test PNG, written by a child process."""
    path = os.path.join(tempfile.gettempdir(), f"collectors-9200-{os.getpid()}.png")
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); "
        "from scripts.bench_decode_memory import big_png; "
        "open(sys.argv[1], 'wb').write(big_png())"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code, path, root], check=True)
    return path


def peak_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the process's own address space; ru_maxrss
    would carry the parent's peak across fork and exec (a test runner of 1 GB reads as 1 GB)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one_request(raw: bytes, images: int, out: list) -> None:
    inputs = [resources_pb2.Input(data=resources_pb2.Data(image=resources_pb2.Image(base64=raw)))]
    prepared = prepare_inputs(inputs * images)
    runner = get_runner("builtin:color-recognition")
    ok = [p for p in prepared if not isinstance(p, ApiError)]
    refused = [p.details[:80] for p in prepared if isinstance(p, ApiError)]
    results = runner.predict(ok, {}) if ok else []
    for data in ok:
        preprocess(data.image.base64)
    out.append({"ok": len(ok), "refused": refused, "results": len(results)})


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    images = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    path = sys.argv[3] if len(sys.argv) > 3 else png_file()
    with open(path, "rb") as fh:
        raw = fh.read()
    base = peak_mb()
    out: list = []
    started = time.monotonic()
    threads = [
        threading.Thread(target=one_request, args=(raw, images, out)) for _ in range(requests)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(
        json.dumps(
            {
                "png_bytes": len(raw),
                "requests": requests,
                "images_per_request": images,
                "peak_rss_before_mb": round(base, 1),
                "peak_rss_after_mb": round(peak_mb(), 1),
                "seconds": round(time.monotonic() - started, 2),
                "outcomes": out,
            }
        )
    )


if __name__ == "__main__":
    main()
