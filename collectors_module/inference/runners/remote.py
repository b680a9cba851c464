"""Remote models: a model version that calls an operator-allow-listed HTTP endpoint.

Kinds (runner `remote:<kind>`; the version's runner config is the dict given here):

`openai-chat` -- an OpenAI-compatible chat-completions endpoint (vLLM, Ollama, LM Studio, hosted
vision models). Config: `url` (the full `/v1/chat/completions` URL), `model` (required),
`prompt` (default "Describe this image in one sentence."), `max_tokens` (default 200).
One request per input::

    {"model": "<model>", "max_tokens": 200, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "<prompt>"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,<bytes>"}}]}]}

(a text input sends the prompt, a blank line and the text as one text part). The reply's
`choices[0].message.content` becomes `Data.text.raw`.

`kserve-v2` -- a KServe v2 (Open Inference Protocol) or plain JSON endpoint returning concepts.
Config: `url` (e.g. `.../v2/models/<name>/infer`), optional `input_name` (default "image"), optional
`labels` (concept ids by index, for replies that carry scores only). One request per input::

    {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["<base64>"],
                 "parameters": {"content_type": "image/png"}}]}

(a text input sends `{"name": "text", ..., "data": ["<text>"], "parameters": {"content_type":
"text/plain"}}`). Accepted replies: plain `{"concepts": [{"id": "cat", "value": 0.93}, ...]}`, or
KServe `{"outputs": [{"name": "labels", "datatype": "BYTES", "data": ["cat", ...]},
{"name": "scores", "datatype": "FP32", "data": [0.93, ...]}]}` (labels may instead come from the
config's `labels`). Values must be finite numbers in [0, 1]. The result is `Data.concepts`,
highest value first.

Both kinds: optional `timeout` (seconds, total per attempt including reading the reply, at most
REMOTE_MODEL_MAX_TIMEOUT), optional `api_key` (the model's own key, sent as `Authorization:
Bearer ...`; sealed at rest by the service, `api_key_sealed` in the stored config, never shown).
Tenants cannot name operator credentials: a model without its own key whose URL falls under an
endpoint prefix the operator bound a credential to (REMOTE_MODEL_CREDENTIAL_ENDPOINTS) is called
with that credential; `api_key_env` is refused. The endpoint must match a prefix in
REMOTE_MODEL_ALLOWED_ENDPOINTS (checked when the version is created and again on every call). 5xx replies and refused/reset connections are
retried twice with a short backoff; timeouts are not retried. Any failure of one input is
`MODEL_PREDICTION_FAILED` with the reason for that input. No proxies, no redirects.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.images import MIME_BY_FORMAT, sniff_format
from collectors_module.core.sealed import SealedError, unseal

from .. import conf
from .base import Result, Runner

KINDS = ("openai-chat", "kserve-v2")
DEFAULT_PROMPT = "Describe this image in one sentence."
MAX_CONCEPTS = 200
MAX_LABEL_LENGTH = 256
_API_KEY_ENV = re.compile(r"REMOTE_MODEL_KEY_[A-Z0-9_]{1,64}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BAD_PATH = re.compile(r"(^|/)\.\.?(/|$)|%2e|%2f|%5c|\\", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_RETRY_STATUSES = frozenset({500, 502, 503, 504})


def _invalid(details: str, field: str = "") -> ApiError:
    return ApiError(SC.MODEL_INVALID_ARGUMENT, details, field=field)


def _split(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an endpoint URL, refusing odd ones."""
    if not isinstance(url, str) or not url or len(url) > 2048 or _CONTROL.search(url):
        raise ValueError("the endpoint URL is empty, too long or contains spaces")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("the endpoint URL must be http or https")
    if "@" in parts.netloc:
        raise ValueError("the endpoint URL must not contain credentials")
    if not parts.hostname:
        raise ValueError("the endpoint URL has no host")
    if parts.fragment:
        raise ValueError("the endpoint URL must not have a fragment")
    port = parts.port or _DEFAULT_PORTS[scheme]  # ValueError on a malformed port
    path = parts.path or "/"
    if _BAD_PATH.search(path):
        raise ValueError("the endpoint path must not contain dot segments or encoded slashes")
    return scheme, parts.hostname.rstrip("."), port, path


def endpoint_allowed(url: str) -> bool:
    """True if `url` falls under one of the operator's REMOTE_MODEL_ALLOWED_ENDPOINTS prefixes
    (same scheme, host and port; path under the prefix's path at a segment boundary)."""
    try:
        scheme, host, port, path = _split(url)
    except ValueError:
        return False
    for prefix in conf.remote_model_allowed_endpoints():
        try:
            p_scheme, p_host, p_port, p_path = _split(prefix)
        except ValueError:
            continue
        if (scheme, host, port) != (p_scheme, p_host, p_port):
            continue
        if p_path.endswith("/"):
            if path.startswith(p_path):
                return True
        elif path == p_path or path.startswith(p_path + "/"):
            return True
    return False


def _under(url: str, prefix: str) -> bool:
    try:
        scheme, host, port, path = _split(url)
        p_scheme, p_host, p_port, p_path = _split(prefix)
    except ValueError:
        return False
    if (scheme, host, port) != (p_scheme, p_host, p_port):
        return False
    if p_path.endswith("/"):
        return path.startswith(p_path)
    return path == p_path or path.startswith(p_path + "/")


def operator_credential(url: str) -> str:
    """The operator credential bound to the endpoint prefix `url` falls under ('' for none).
    Only REMOTE_MODEL_KEY_* credentials, and only through the operator's mapping."""
    for name, prefix in conf.remote_model_credential_endpoints().items():
        if _API_KEY_ENV.fullmatch(name) and _under(url, prefix):
            return conf.remote_model_key(name)
    return ""


def check_endpoint_allowed(url: str) -> str:
    """Return `url` if the operator allows remote models to call it, else MODEL_INVALID_ARGUMENT."""
    try:
        _split(url)
    except ValueError as exc:
        raise _invalid(f"Remote model endpoint is invalid: {exc}", field="url") from None
    if not endpoint_allowed(url):
        raise _invalid(
            f"Remote model endpoint '{url[:200]}' is not on this server's allow-list "
            "(REMOTE_MODEL_ALLOWED_ENDPOINTS)",
            field="url",
        )
    return url


class PredictionFailed(Exception):
    def __init__(self, reason: str, retry: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


def _failed(reason: str) -> ApiError:
    return ApiError(SC.MODEL_PREDICTION_FAILED, f"Remote model call failed: {reason}")


class RemoteRunner(Runner):
    kind = ""

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.url = check_endpoint_allowed(str(self.config.get("url", "") or ""))
        timeout = self.config.get("timeout", conf.remote_model_timeout())
        try:
            timeout = float(timeout)
        except (TypeError, ValueError):
            raise _invalid("timeout must be a number of seconds", field="timeout") from None
        if not 0 < timeout <= conf.remote_model_max_timeout() or math.isnan(timeout):
            raise _invalid(
                f"timeout must be more than 0 and at most {conf.remote_model_max_timeout()} s",
                field="timeout",
            )
        self.timeout = timeout
        if "api_key_env" in self.config:
            raise _invalid(
                "api_key_env is not accepted: operator credentials are bound to endpoints by the "
                "operator (REMOTE_MODEL_CREDENTIAL_ENDPOINTS); give the model its own api_key",
                field="api_key_env",
            )
        api_key = self.config.get("api_key", "")
        if not isinstance(api_key, str) or len(api_key) > 4096 or _CONTROL.search(api_key):
            raise _invalid("api_key must be a short string without spaces", field="api_key")
        sealed_key = self.config.get("api_key_sealed", "")
        if sealed_key:
            try:
                api_key = unseal(str(sealed_key))
            except SealedError:
                raise _invalid(
                    "this model's API key cannot be opened with the configured keys "
                    "(REMOTE_MODEL_SECRET_KEYS)",
                    field="api_key",
                ) from None
        self.api_key = api_key
        self._http = urllib3.PoolManager(
            num_pools=4, maxsize=max(1, conf.remote_model_concurrency()), retries=False
        )

    # -- one input -----------------------------------------------------------------------

    def build_body(self, data: resources_pb2.Data) -> dict:
        raise NotImplementedError

    def parse_reply(self, reply: Any) -> resources_pb2.Data:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        secret = self.api_key or operator_credential(self.url)
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        return headers

    def _post_once(self, body: bytes) -> Any:
        deadline = time.monotonic() + self.timeout
        timeout = urllib3.Timeout(
            connect=min(conf.remote_model_connect_timeout(), self.timeout), read=self.timeout
        )
        try:
            response = self._http.request(
                "POST",
                self.url,
                body=body,
                headers=self._headers(),
                timeout=timeout,
                redirect=False,
                preload_content=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # refused, unreachable
            raise PredictionFailed(
                f"cannot reach the endpoint ({_reason(exc)})", retry=True
            ) from None
        except urllib3.exceptions.TimeoutError:
            raise PredictionFailed(f"no reply within {self.timeout:g} s") from None
        except urllib3.exceptions.HTTPError as exc:
            raise PredictionFailed(
                f"cannot reach the endpoint ({type(exc).__name__})", retry=True
            ) from None
        try:
            cap = conf.remote_model_max_reply_bytes()
            chunks: list[bytes] = []
            size = 0
            while True:
                # read1 returns after one receive, so a dripping reply still meets the deadline
                chunk = response.read1(65536, decode_content=False)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise PredictionFailed(f"the reply is larger than {cap} bytes")
                if time.monotonic() > deadline:
                    raise PredictionFailed(f"no complete reply within {self.timeout:g} s")
                chunks.append(chunk)
            if time.monotonic() > deadline:
                raise PredictionFailed(f"no complete reply within {self.timeout:g} s")
        except urllib3.exceptions.TimeoutError:
            raise PredictionFailed(f"no complete reply within {self.timeout:g} s") from None
        except urllib3.exceptions.HTTPError as exc:
            raise PredictionFailed(
                f"the reply was cut off ({type(exc).__name__})", retry=True
            ) from None
        finally:
            response.release_conn()
            response.close()
        status = response.status
        raw = b"".join(chunks)
        if status >= 500:
            raise PredictionFailed(
                f"the endpoint answered HTTP {status}", retry=status in _RETRY_STATUSES
            )
        if status != 200:
            raise PredictionFailed(f"the endpoint answered HTTP {status}: {_snippet(raw)}")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise PredictionFailed(f"the reply is not JSON: {_snippet(raw)}") from None

    def _predict_one(self, data: resources_pb2.Data) -> Result:
        try:
            if not endpoint_allowed(self.url):  # the operator may have narrowed the list since
                return _failed("the endpoint is no longer on this server's allow-list")
            body = json.dumps(self.build_body(data)).encode()
            retries = max(0, conf.remote_model_retries())
            backoff = conf.remote_model_retry_backoff()
            for attempt in range(retries + 1):
                try:
                    return self.parse_reply(self._post_once(body))
                except PredictionFailed as exc:
                    if not exc.retry or attempt == retries:
                        suffix = f" after {attempt + 1} attempts" if attempt else ""
                        return _failed(exc.reason + suffix)
                time.sleep(backoff * (2**attempt))
            return _failed("no attempt was made")  # pragma: no cover - loop always returns
        except ApiError as exc:
            return exc
        except PredictionFailed as exc:
            return _failed(exc.reason)
        except Exception as exc:  # a remote model must never turn into a 500
            return _failed(f"unexpected {type(exc).__name__}")

    def predict(self, inputs: list[resources_pb2.Data], params: dict[str, Any]) -> list[Result]:
        if len(inputs) <= 1:
            return [self._predict_one(d) for d in inputs]
        workers = max(1, min(len(inputs), conf.remote_model_concurrency()))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remote-model") as pool:
            return list(pool.map(self._predict_one, inputs))


def _reason(exc: Exception) -> str:
    text = str(exc).rsplit(":", 1)[-1].strip()[:120]
    return text or type(exc).__name__


def _snippet(raw: bytes) -> str:
    text = raw[:120].decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _image_mime(image_bytes: bytes) -> str:
    return MIME_BY_FORMAT.get(sniff_format(image_bytes) or "", "image/jpeg")


class OpenAIChatRunner(RemoteRunner):
    kind = "openai-chat"
    model_type_id = "image-to-text"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.model = str(self.config.get("model", "") or "")
        if not self.model or len(self.model) > 256:
            raise _invalid("openai-chat needs the remote model name in 'model'", field="model")
        self.prompt = str(self.config.get("prompt", "") or DEFAULT_PROMPT)[:4000]
        try:
            self.max_tokens = int(self.config.get("max_tokens", 200))
        except (TypeError, ValueError):
            raise _invalid("max_tokens must be an integer", field="max_tokens") from None
        if not 1 <= self.max_tokens <= 8192:
            raise _invalid("max_tokens must be between 1 and 8192", field="max_tokens")

    def build_body(self, data: resources_pb2.Data) -> dict:
        if data.image.base64:
            encoded = base64.b64encode(data.image.base64).decode("ascii")
            image_url = f"data:{_image_mime(data.image.base64)};base64,{encoded}"
            content: list[dict] = [
                {"type": "text", "text": self.prompt},
                {"type": "image_url", "image_url": {"url": image_url}},
            ]
        elif data.text.raw:
            content = [{"type": "text", "text": f"{self.prompt}\n\n{data.text.raw}"}]
        else:
            raise _failed("the input has neither image bytes nor text")
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": content}],
        }

    def parse_reply(self, reply: Any) -> resources_pb2.Data:
        try:
            message = reply["choices"][0]["message"]
            content = message["content"]
        except (KeyError, IndexError, TypeError):
            raise PredictionFailed("the reply has no choices[0].message.content") from None
        if isinstance(content, list):  # content parts
            texts = [p.get("text", "") for p in content if isinstance(p, dict)]
            if not all(isinstance(t, str) for t in texts):
                raise PredictionFailed("the reply's content parts are not text")
            content = "".join(texts)
        if not isinstance(content, str):
            raise PredictionFailed("the reply's message content is not text")
        content = content.strip()
        if not content:
            raise PredictionFailed("the reply's message content is empty")
        return resources_pb2.Data(text=resources_pb2.Text(raw=content))


class KServeV2Runner(RemoteRunner):
    kind = "kserve-v2"
    model_type_id = "visual-classifier"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.input_name = str(self.config.get("input_name", "") or "image")[:128]
        labels = self.config.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise _invalid("labels must be a list of concept ids", field="labels")
        self.labels = [x[:MAX_LABEL_LENGTH] for x in labels]

    def build_body(self, data: resources_pb2.Data) -> dict:
        if data.image.base64:
            item = {
                "name": self.input_name,
                "datatype": "BYTES",
                "shape": [1],
                "data": [base64.b64encode(data.image.base64).decode("ascii")],
                "parameters": {"content_type": _image_mime(data.image.base64)},
            }
        elif data.text.raw:
            item = {
                "name": "text",
                "datatype": "BYTES",
                "shape": [1],
                "data": [data.text.raw],
                "parameters": {"content_type": "text/plain"},
            }
        else:
            raise _failed("the input has neither image bytes nor text")
        return {"inputs": [item]}

    def parse_reply(self, reply: Any) -> resources_pb2.Data:
        if not isinstance(reply, dict):
            raise PredictionFailed("the reply is not a JSON object")
        if "concepts" in reply:
            pairs = _plain_concepts(reply["concepts"])
        elif "outputs" in reply:
            pairs = _kserve_concepts(reply["outputs"], self.labels)
        else:
            raise PredictionFailed("the reply has neither 'concepts' nor 'outputs'")
        pairs.sort(key=lambda p: p[1], reverse=True)
        concepts = [
            resources_pb2.Concept(id=label, name=label, value=value)
            for label, value in pairs[:MAX_CONCEPTS]
        ]
        return resources_pb2.Data(concepts=concepts)


def _check_label(label: Any) -> str:
    if not isinstance(label, str) or not label.strip():
        raise PredictionFailed("a concept id in the reply is not a non-empty string")
    label = "".join(ch for ch in label.strip() if ch.isprintable())
    if not label or len(label) > MAX_LABEL_LENGTH:
        raise PredictionFailed("a concept id in the reply is empty or too long")
    return label


def _check_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PredictionFailed("a concept value in the reply is not a number")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise PredictionFailed("a concept value in the reply is outside [0, 1]")
    return value


def _plain_concepts(items: Any) -> list[tuple[str, float]]:
    if not isinstance(items, list):
        raise PredictionFailed("'concepts' in the reply is not a list")
    pairs = []
    for item in items:
        if not isinstance(item, dict):
            raise PredictionFailed("an entry of 'concepts' is not an object")
        label = item.get("id") or item.get("name")
        pairs.append((_check_label(label), _check_value(item.get("value"))))
    return pairs


def _kserve_concepts(outputs: Any, labels: list[str]) -> list[tuple[str, float]]:
    if not isinstance(outputs, list) or not outputs:
        raise PredictionFailed("'outputs' in the reply is not a non-empty list")
    label_data = score_data = None
    for out in outputs:
        if not isinstance(out, dict) or not isinstance(out.get("data"), list):
            raise PredictionFailed("an entry of 'outputs' has no 'data' list")
        data = out["data"]
        if data and all(isinstance(x, str) for x in data):
            label_data = label_data if label_data is not None else data
        elif all(isinstance(x, int | float) and not isinstance(x, bool) for x in data):
            score_data = score_data if score_data is not None else data
    if score_data is None:
        raise PredictionFailed("the reply's outputs carry no scores")
    if label_data is None:
        if not labels:
            raise PredictionFailed("the reply's outputs carry no labels and the model has none")
        label_data = labels
    if len(label_data) != len(score_data):
        raise PredictionFailed(
            f"the reply has {len(score_data)} scores for {len(label_data)} labels"
        )
    return [
        (_check_label(lb), _check_value(v)) for lb, v in zip(label_data, score_data, strict=True)
    ]


_RUNNERS: dict[str, type[RemoteRunner]] = {
    "openai-chat": OpenAIChatRunner,
    "kserve-v2": KServeV2Runner,
}


def make_remote_runner(kind: str, config: dict) -> Runner:
    """A runner for `remote:<kind>`; raises MODEL_INVALID_ARGUMENT for an unknown kind, a bad
    config or an endpoint that is not on REMOTE_MODEL_ALLOWED_ENDPOINTS."""
    cls = _RUNNERS.get(kind)
    if cls is None:
        raise _invalid(
            f"Unknown remote model kind '{str(kind)[:64]}'; use one of: {', '.join(KINDS)}",
            field="runner",
        )
    if not isinstance(config, dict):
        raise _invalid("remote model config must be an object")
    return cls(config)
