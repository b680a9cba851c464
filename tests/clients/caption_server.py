"""A small OpenAI-compatible chat-completions endpoint on loopback, standing in for a vision
model server (vLLM, Ollama, ...) behind a remote model version. It really looks at the image:
the caption names its size and its dominant colour, computed with Pillow."""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading

import numpy as np
from PIL import Image

_COLOURS = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}


def caption(image_bytes: bytes) -> str:
    img = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    mean = tuple(np.asarray(img, dtype=float).reshape(-1, 3).mean(axis=0))
    name = min(
        _COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(_COLOURS[c], mean, strict=True))
    )
    return f"An {img.width}x{img.height} image, mostly {name}."


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        text = "no image"
        for part in body["messages"][0]["content"]:
            if part.get("type") == "image_url":
                data_url = part["image_url"]["url"]
                text = caption(base64.b64decode(data_url.split(",", 1)[1]))
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply.encode())


class CaptionServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.base}/v1/chat/completions"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
