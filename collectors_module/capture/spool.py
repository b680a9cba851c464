"""This host's capture spool: append-only segment files between serving processes and the agent.

A serving process (gunicorn worker, gRPC server) appends each admitted capture as one frame to
its own segment file and sends a one-byte wake-up datagram to the agent. Nothing else happens on
the request thread: no database, no broker, no JSON. The capture agent (`agent.py`, one per host)
reads every segment, commits the captures as outbox rows and publishes them.

Why files: what a serving process has written survives a SIGKILL of that process (the bytes are
in the kernel's page cache) and of the agent (it resumes from the offsets it recorded after each
commit; a frame committed but not yet recorded is read again and its row already exists, so it is
not inserted twice). Only a crash of the host itself can lose frames not yet committed.

Frame: magic (2 bytes) | body length (u32) | CRC-32 of the body (u32) | body.
Body: capture id (16) | collector pk (i64) | caller pk (i64, 0 = none) | created at (f64 unix s) |
input index (u32) | flags (u8) | request id length (u16) | request id | three length-prefixed
blobs: the input `Data`, the `Output` (both serialized protobuf), the fetched image bytes.

Segments are named `<host>-<pid>-<start ns>-<seq>.seg`. A writer holds a shared `flock` on the
segment it appends to (taken before the file gets its final name); the agent deletes a segment
only after reading it to the end while holding an exclusive lock on it, which it can only get
once the writer has moved to a newer segment or exited.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import logging
import os
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("collectors.spool")

MAGIC = b"\xc5\x01"
HEADER = struct.Struct("<2sII")
BODY_HEAD = struct.Struct("<16sqqdIBH")
BLOB = struct.Struct("<I")
FLAG_DEFERRED = 1
SUFFIX = ".seg"
MAX_FRAME_BYTES = 256 * 2**20  # a length beyond this is corruption, not a frame
# After a wake-up the agent waits at least WAKE_QUIET before reading (longer under load, see
# agent.Agent._linger), so a writer may skip the datagram when it sent one less than WAKE_QUIET
# ago: the frame is read by the pass that wake-up started.
WAKE_QUIET = 0.005


@dataclass(slots=True)
class Record:
    """One admitted capture as the serving process hands it over (plain values only)."""

    id: uuid.UUID
    collector_id: int
    caller_id: int | None
    created_at: float  # unix seconds, the serving host's clock
    request_id: str
    input_index: int
    deferred: bool  # the pre-queue workflow needs real models: the worker runs it
    data: bytes  # serialized resources_pb2.Data (image bytes included when the client sent them)
    output: bytes  # serialized resources_pb2.Output of the source model for this input
    payload: bytes = b""  # image bytes fetched from the input's URL ("" when none)


def encode(r: Record) -> bytes:
    rid = r.request_id.encode("utf-8", "replace")[:1024]
    body = b"".join(
        (
            BODY_HEAD.pack(
                r.id.bytes,
                int(r.collector_id),
                int(r.caller_id or 0),
                float(r.created_at),
                int(r.input_index),
                FLAG_DEFERRED if r.deferred else 0,
                len(rid),
            ),
            rid,
            BLOB.pack(len(r.data)),
            r.data,
            BLOB.pack(len(r.output)),
            r.output,
            BLOB.pack(len(r.payload)),
            r.payload,
        )
    )
    return HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


def decode(body: bytes | memoryview) -> Record:
    """The record of a frame body whose CRC matched; ValueError if it is malformed."""
    view = memoryview(body)
    try:
        cid, collector, caller, created, index, flags, rid_len = BODY_HEAD.unpack_from(view, 0)
        pos = BODY_HEAD.size
        rid = bytes(view[pos : pos + rid_len]).decode("utf-8", "replace")
        pos += rid_len
        blobs = []
        for _ in range(3):
            (n,) = BLOB.unpack_from(view, pos)
            pos += BLOB.size
            if pos + n > len(view):
                raise ValueError("blob runs past the frame")
            blobs.append(bytes(view[pos : pos + n]))
            pos += n
    except struct.error as exc:
        raise ValueError(f"malformed frame: {exc}") from exc
    return Record(
        id=uuid.UUID(bytes=cid),
        collector_id=collector,
        caller_id=caller or None,
        created_at=created,
        request_id=rid,
        input_index=index,
        deferred=bool(flags & FLAG_DEFERRED),
        data=blobs[0],
        output=blobs[1],
        payload=blobs[2],
    )


def collector_of(body: bytes | memoryview) -> int | None:
    """The collector pk of a (possibly truncated) frame body, if enough of it is there."""
    try:
        return int(BODY_HEAD.unpack_from(memoryview(body), 0)[1])
    except struct.error:
        return None


@dataclass(slots=True)
class Frame:
    offset: int  # where the frame starts in its segment
    end: int  # where the next frame starts
    body: bytes


def parse(
    buffer: bytes, base: int = 0, *, final: bool = False, max_frames: int = 0
) -> tuple[list[Frame], int, int]:
    """Complete frames in `buffer` (which starts at segment offset `base`).

    Returns (frames, consumed, skipped): `consumed` bytes from the start of the buffer hold whole
    frames (or skipped garbage); what follows is an incomplete frame to read again later.
    `skipped` counts bytes that were not a valid frame (corruption), resynchronised on the next
    magic whose frame checks out. With `final` (no writer will append any more) an incomplete
    frame is garbage too, and everything is consumed. With `max_frames`, it stops after that
    many frames (the rest is read again later: a reader taking a batch need not check them all)."""
    frames: list[Frame] = []
    pos = skipped = 0
    n = len(buffer)
    while pos + HEADER.size <= n:
        if max_frames and len(frames) >= max_frames:
            return frames, pos, skipped
        magic, length, crc = HEADER.unpack_from(buffer, pos)
        if magic == MAGIC and length <= MAX_FRAME_BYTES:
            end = pos + HEADER.size + length
            if end > n and not final:
                break  # the rest of this frame has not been written (or read) yet
            body = buffer[pos + HEADER.size : end]
            if end <= n and zlib.crc32(body) == crc:
                frames.append(Frame(base + pos, base + end, body))
                pos = end
                continue
        nxt = buffer.find(MAGIC, pos + 1)
        if nxt < 0:
            # Keep the last few bytes: they may be the start of a frame still being written.
            nxt = n if final else max(pos + 1, n - HEADER.size + 1)
        skipped += nxt - pos
        pos = nxt
    if final and pos < n:
        skipped += n - pos
        pos = n
    return frames, pos, skipped


def frame_size(buffer: bytes) -> int:
    """The size (header and body) of the frame starting `buffer`, or 0 when none starts there."""
    if len(buffer) < HEADER.size:
        return 0
    magic, length, _ = HEADER.unpack_from(buffer, 0)
    return HEADER.size + length if magic == MAGIC and length <= MAX_FRAME_BYTES else 0


def wake_address(directory: Path) -> bytes:
    """The agent's wake-up socket: abstract (Linux), named after the spool folder, so there is no
    path-length limit and no file to clean up; it is shared by the processes of one network
    namespace, which is what "one host" means here."""
    digest = hashlib.blake2b(str(Path(directory).resolve()).encode(), digest_size=12).hexdigest()
    return b"\0collectors-capture-agent-" + digest.encode()


def heartbeat_path(directory: Path) -> Path:
    return Path(directory) / "agent.heartbeat"


def agent_alive(directory: Path, stale_seconds: float) -> bool:
    """True when an agent wrote its heartbeat within `stale_seconds`."""
    try:
        return time.time() - heartbeat_path(directory).stat().st_mtime < stale_seconds
    except OSError:
        return False


class SpoolFull(Exception):
    pass


def _gil_holding_write():
    """libc's write(2) called without releasing the GIL (ctypes.PyDLL), or None.

    `os.write` releases the GIL around the system call; in a serving process whose threads are
    all busy with predictions, the writer then waits its turn to take the GIL back (a handoff
    per capture, the cost that dominated capturing under load in the gRPC server). Appending a
    frame to the page cache takes a few microseconds, so holding the GIL through it is cheaper."""
    try:
        libc = ctypes.PyDLL(None, use_errno=True)
        fn = libc.write
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_ssize_t
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)

    def write(fd: int, data: bytes) -> int:
        n = fn(fd, data, len(data))
        if n < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return n

    return write


write_holding_gil = _gil_holding_write() or (lambda fd, data: os.write(fd, data))


class SpoolWriter:
    """One per serving process (re-created after a fork): appends frames to its own segments."""

    def __init__(self, directory: Path, *, segment_bytes: int, max_bytes: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.pid = os.getpid()
        host = socket.gethostname().replace("-", "_")[:40] or "host"
        self.prefix = f"{host}-{self.pid}-{time.time_ns()}"
        self.seq = 0
        self.fd: int | None = None
        self.path: Path | None = None
        self.size = 0
        self.closed: deque[tuple[Path, int]] = deque()  # my older segments, maybe unconsumed
        self.closed_bytes = 0
        self.pruned_at = 0.0
        self.lock = threading.Lock()
        self.key: object = None  # the setting value this writer was made for
        self.wake_to = wake_address(self.directory)
        self.wake_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.wake_sock.setblocking(False)
        self.woke_at = 0.0
        self.stats = {"frames": 0, "bytes": 0, "segments": 0}

    def _open_next(self) -> None:
        self.seq += 1
        name = f"{self.prefix}-{self.seq:06d}{SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # before the agent can see the file
            final = self.directory / name
            os.rename(tmp, final)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fd is not None:
            self.closed.append((self.path, self.size))
            self.closed_bytes += self.size
            os.close(self.fd)  # releases our lock: the agent may delete it once read
        self.fd, self.path, self.size = fd, final, 0
        self.stats["segments"] += 1

    def _backlog(self) -> int:
        """Bytes of my segments the agent has not deleted yet (an upper bound of the unconsumed)."""
        now = time.monotonic()
        if self.closed and now - self.pruned_at > 1.0:
            self.pruned_at = now
            kept: deque[tuple[Path, int]] = deque()
            for path, size in self.closed:
                if path.exists():
                    kept.append((path, size))
            self.closed = kept
            self.closed_bytes = sum(size for _, size in kept)
        return self.closed_bytes + self.size

    def append(self, frames: list[bytes]) -> None:
        """Append whole frames; raises SpoolFull beyond the cap, OSError on a write failure (the
        segment is truncated back, so no partial frame is left behind)."""
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        with self.lock:
            if self.fd is None or (self.size and self.size + len(data) > self.segment_bytes):
                self._open_next()
            if self._backlog() + len(data) > self.max_bytes:
                raise SpoolFull(f"{self._backlog()} bytes wait in this process's spool")
            written = 0
            try:
                while written < len(data):
                    written += write_holding_gil(self.fd, data[written:] if written else data)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, self.size)
                raise
            self.size += len(data)
            self.stats["frames"] += len(frames)
            self.stats["bytes"] += len(data)
        self.wake()

    def wake(self) -> None:
        # The agent reads a little after it wakes (at least WAKE_QUIET): frames written within
        # WAKE_QUIET of the last wake-up are read by that same pass, so no datagram is needed.
        now = time.monotonic()
        if now - self.woke_at < WAKE_QUIET:
            return
        self.woke_at = now
        try:
            self.wake_sock.sendto(b"w", self.wake_to)
        except OSError as exc:  # no agent listening, or its queue is full: it polls anyway
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.EAGAIN, errno.ENOBUFS):
                log.debug("spool wake-up failed: %s", exc)

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
        self.wake_sock.close()


_writer: SpoolWriter | None = None
_writer_lock = threading.Lock()


def writer(directory, *, segment_bytes: int, max_bytes: int) -> SpoolWriter:
    """This process's writer for `directory` (a new one after a fork or a settings change)."""
    global _writer
    w = _writer
    if w is None or w.pid != os.getpid() or w.key != directory:
        with _writer_lock:
            w = _writer
            if w is None or w.pid != os.getpid() or w.key != directory:
                w = _writer = SpoolWriter(
                    Path(directory), segment_bytes=segment_bytes, max_bytes=max_bytes
                )
                w.key = directory
    w.segment_bytes, w.max_bytes = segment_bytes, max_bytes
    return w


def close_writer() -> None:
    """Close this process's segment (tests; a normal exit closes it anyway)."""
    global _writer
    with _writer_lock:
        w, _writer = _writer, None
    if w is not None and w.pid == os.getpid():
        w.close()


def segments(directory: Path) -> list[Path]:
    """The spool's segment files, oldest writer and sequence first."""
    try:
        names = [n for n in os.listdir(directory) if n.endswith(SUFFIX) and not n.startswith(".")]
    except FileNotFoundError:
        return []
    return [Path(directory) / n for n in sorted(names)]


def try_exclusive(fd: int) -> bool:
    """True when no writer holds this segment (we hold it exclusively now)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True
