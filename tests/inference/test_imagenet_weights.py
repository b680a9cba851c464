"""The EfficientNet-Lite0 weights reader (restricted unpickler) and the ONNX graph cache."""

from __future__ import annotations

import collections
import hashlib
import pickle
import struct
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from collectors_module.inference.runners.builtin import imagenet

ROOT = Path(__file__).resolve().parents[2]


# -- a writer of PyTorch's legacy format, for crafted files (no torch needed) ------------------


class _Storage:
    def __init__(self, key: str, values: np.ndarray):
        self.key, self.values = key, values.astype(np.float32)


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


@pytest.fixture
def fake_torch(monkeypatch):
    """Modules named like torch's, so pickle can write references to torch's rebuild function."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: the reader maps the name to its own function
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def write_legacy(path: Path, state: dict, storages: list[_Storage], *, extra=None) -> Path:
    torch = sys.modules["torch"]

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.values.size, None)
            return None

    with open(path, "wb") as fh:
        for header in (
            0x1950A86A20F9469CFC6C,
            1001,
            {"protocol_version": 1001, "little_endian": True},
        ):
            pickle.dump(header, fh, protocol=2)
        Pickler(fh, protocol=2).dump(extra if extra is not None else collections.OrderedDict(state))
        pickle.dump([s.key for s in storages], fh, protocol=2)
        for s in storages:
            fh.write(struct.pack("<q", s.values.size))
            fh.write(s.values.tobytes())
    return path


def test_a_crafted_state_dict_reads_back_with_its_strides(tmp_path, fake_torch):
    s = _Storage("1", np.arange(6))
    path = write_legacy(
        tmp_path / "w.pth",
        {"flat": _Tensor(s, 0, (6,), (1,)), "transposed": _Tensor(s, 0, (3, 2), (1, 3))},
        [s],
    )
    out = imagenet.read_state_dict(path, expected_sha256="")
    assert out["flat"].tolist() == [0, 1, 2, 3, 4, 5]
    assert out["transposed"].tolist() == [[0, 3], [1, 4], [2, 5]]


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path, fake_torch):
    s = _Storage("1", np.arange(5))
    path = write_legacy(tmp_path / "w.pth", {"w": _Tensor(s, 2, (4,), (1,))}, [s])
    with pytest.raises(imagenet.WeightsError, match="past its storage"):
        imagenet.read_state_dict(path, expected_sha256="")


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_code_in_the_weights_is_refused_and_never_run(tmp_path, fake_torch):
    marker = tmp_path / "ran"
    path = write_legacy(tmp_path / "evil.pth", {}, [], extra={"w": _Exploit(marker)})
    with pytest.raises(imagenet.WeightsError, match="not tensor data"):
        imagenet.read_state_dict(path, expected_sha256="")
    assert not marker.exists()


def test_weights_whose_checksum_differs_are_refused(tmp_path):
    raw = bytearray(imagenet.weights_path().read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy = tmp_path / "changed.pth"
    copy.write_bytes(bytes(raw))
    with pytest.raises(imagenet.WeightsError, match="SHA-256"):
        imagenet.read_state_dict(copy)


def test_the_packaged_weights_are_efficientnet_lite0():
    weights = imagenet.read_state_dict(imagenet.weights_path())
    assert weights["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert weights["_fc.weight"].shape == (1000, 1280)
    assert weights["_fc.weight"].flags["C_CONTIGUOUS"]
    learned = [v.size for k, v in weights.items() if "running_" not in k and "num_batches" not in k]
    assert sum(learned) == 4_652_008  # EfficientNet-Lite0's 4.65 M parameters


# -- the graph cache ---------------------------------------------------------------------------


def _valid(path: Path) -> bool:
    return imagenet.read_cached(path) is not None


def test_the_graph_is_built_once_then_read_from_the_cache(tmp_path):
    data = imagenet.load_model_bytes(tmp_path)
    path = imagenet.cache_path(tmp_path)
    assert path.read_bytes() == data
    digest = path.with_name(path.name + ".sha256").read_text().split()[0]
    assert digest == hashlib.sha256(data).hexdigest()
    mtime = path.stat().st_mtime_ns
    assert imagenet.load_model_bytes(tmp_path) == data
    assert path.stat().st_mtime_ns == mtime  # read, not rebuilt


def test_the_build_is_deterministic(tmp_path):
    weights = imagenet.read_state_dict(imagenet.weights_path())
    assert imagenet.build_onnx(weights) == imagenet.build_onnx(weights)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "no-checksum", "bad-checksum"])
def test_a_corrupt_cache_is_rebuilt(tmp_path, damage):
    good = imagenet.load_model_bytes(tmp_path)
    path = imagenet.cache_path(tmp_path)
    sha = path.with_name(path.name + ".sha256")
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "flipped":
        raw = bytearray(good)
        raw[1000] ^= 0x01
        path.write_bytes(bytes(raw))
    elif damage == "no-checksum":
        sha.unlink()
    else:
        sha.write_text("0" * 64 + "\n")
    assert not _valid(path)
    assert imagenet.load_model_bytes(tmp_path) == good
    assert _valid(path)


def test_two_processes_building_at_once_both_get_a_valid_cache(tmp_path):
    code = (
        "import sys; from pathlib import Path; "
        "from collectors_module.inference.runners.builtin import imagenet; "
        "data = imagenet.load_model_bytes(Path(sys.argv[1])); "
        "import hashlib; print(hashlib.sha256(data).hexdigest())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    digests = {out.strip() for out, _ in outs}
    assert len(digests) == 1
    path = imagenet.cache_path(tmp_path)
    assert _valid(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() in digests
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_unwritable_cache_folder_still_gives_a_working_model(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    data = imagenet.load_model_bytes(blocker / "models")
    assert len(data) > 10_000_000


def test_the_session_runs_the_graph_with_its_two_outputs(tmp_path):
    model = imagenet.ImageNetModel(tmp_path)
    images = np.zeros((10, 224, 224, 3), dtype=np.uint8)  # more than one onnxruntime batch
    probs, feats = model.run(images)
    assert probs.shape == (10, 1000)
    assert feats.shape == (10, 1280)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert len(model.labels) == 1000
