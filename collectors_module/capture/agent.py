"""The capture agent: one process per host that turns the spool into committed outbox rows.

`python manage.py captureagent` runs it next to the web and gRPC servers of a host (a sidecar).
It takes the spool's lock (a second agent waits as a hot standby), then loops: read new frames
from every segment, commit them as `Capture` rows in batches (`outbox.write`), record how far it
got (`agent.offsets`), publish the new ids to the workers (the relay thread), delete segments
that are read to the end and that no writer holds any more. A wake-up datagram from a writer
ends its wait at once; without one it looks again every COLLECTORS_AGENT_POLL_SECONDS.

What a SIGKILL of the agent can lose: nothing that reached the spool. Frames committed but not yet
recorded in the offsets are read again on restart and skipped (their rows exist; still-accepted
ones are published again). Ids committed but not yet published are published by the sweeper.
While the agent is down, captures wait in the spool (each serving process holds at most
COLLECTORS_SPOOL_MAX_BYTES; beyond that it drops new ones, counted `spool_full`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import close_old_connections, connection

from collectors_module.core import generations
from collectors_module.core.faults import fault_point

from . import conf, counters, outbox, relay, spool

log = logging.getLogger("collectors.agent")

READ_CHUNK = 8 * 2**20  # the second read of a pass (more when one frame is bigger)
FIRST_READ = 2**20  # read this much first: a batch of small frames fits, and parsing stops there
OFFSETS = "agent.offsets"
LOCK = "agent.lock"
TMP_MAX_AGE = 60.0
LINGER_BATCH = 400
LINGER_FROM_RATE = 100.0  # frames per second
MAX_LINGER = 0.1
# The agent is off the prediction path: its insert may wait for locks much longer.
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 10_000


@dataclass
class _Segment:
    path: Path
    fd: int
    offset: int  # committed: everything before it is in the database (or deliberately dropped)
    closed: bool = False  # we hold it exclusively: no writer will append any more


class Agent:
    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory or conf.spool_dir())
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segments: dict[str, _Segment] = {}
        self.offsets: dict[str, int] = {}
        self.lock_fd: int | None = None
        self.wake: socket.socket | None = None
        self.stats = {
            "records": 0,
            "accepted": 0,
            "again": 0,
            "dropped": 0,
            "skipped_bytes": 0,
            "bad_frames": 0,
            "segments_deleted": 0,
            "batches": 0,
            "failures": 0,
        }
        self._beat_at = 0.0
        self._failures = 0
        self._rate = 0.0
        self._rate_at = time.monotonic()

    # -- start ----------------------------------------------------------------------------

    def acquire(self, *, wait: bool = True) -> bool:
        """Take the spool's lock (blocks while another agent holds it, unless wait=False)."""
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError:
            os.close(fd)
            return False
        self.lock_fd = fd
        self.offsets = self._load_offsets()
        self.wake = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.wake.bind(spool.wake_address(self.directory))
        self.wake.setblocking(False)
        return True

    def close(self) -> None:
        for seg in self.segments.values():
            with contextlib.suppress(OSError):
                os.close(seg.fd)
        self.segments.clear()
        if self.wake is not None:
            self.wake.close()
            self.wake = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def _load_offsets(self) -> dict[str, int]:
        try:
            raw = json.loads((self.directory / OFFSETS).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in raw.items() if isinstance(v, int)}

    def _save_offsets(self) -> None:
        tmp = self.directory / f".{OFFSETS}.tmp"
        tmp.write_text(json.dumps(self.offsets))
        os.replace(tmp, self.directory / OFFSETS)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                n = self.step()
            except Exception:
                # The database (or the disk) failed: nothing advanced, try again after a pause.
                self._failures += 1
                self.stats["failures"] += 1
                log.exception("capture agent step failed; retrying")
                close_old_connections()
                stop.wait(min(5.0, 0.2 * self._failures))
                continue
            self._failures = 0
            self._heartbeat()
            counters.flush_if_due()
            self._note_rate(n)
            if n == 0:
                self._wait(conf.agent_poll_seconds())
            elif n < conf.agent_batch():
                time.sleep(self._linger())  # gather a batch rather than commit frame by frame
        counters.flush()
        relay.flush(2.0)

    def _note_rate(self, n: int) -> None:
        """Keep an exponentially weighted estimate of frames per second."""
        now = time.monotonic()
        elapsed = max(1e-3, now - self._rate_at)
        self._rate_at = now
        alpha = min(1.0, elapsed / 2.0)  # about a two-second memory
        self._rate = (1 - alpha) * self._rate + alpha * (n / elapsed)

    def _linger(self) -> float:
        """How long to let frames gather before the next pass: at a few per second, hardly at
        all (a capture waits at most WAKE_QUIET); under load, long enough for a batch of about
        LINGER_BATCH frames (at most MAX_LINGER), so the commits and publishes per capture stay
        few and the agent's CPU, which is the serving host's, stays small."""
        if self._rate < LINGER_FROM_RATE:
            return spool.WAKE_QUIET
        return min(MAX_LINGER, max(spool.WAKE_QUIET, LINGER_BATCH / self._rate))

    def _wait(self, timeout: float) -> None:
        if self.wake is None:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([self.wake], [], [], timeout)
        if ready:
            time.sleep(self._linger())  # let a few more frames arrive: one batch, not one each
            with contextlib.suppress(OSError):
                while self.wake.recv(64):
                    pass

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._beat_at < 1.0:
            return
        self._beat_at = now
        path = spool.heartbeat_path(self.directory)
        try:
            os.utime(path)
        except FileNotFoundError:
            path.write_text(str(os.getpid()))
        self._cleanup_tmp()

    def _cleanup_tmp(self) -> None:
        """Remove temp files of writers that died between creating and naming a segment."""
        now = time.time()
        for name in os.listdir(self.directory):
            if name.startswith(".") and name.endswith(".seg.tmp"):
                path = self.directory / name
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > TMP_MAX_AGE:
                        path.unlink()

    def _segment(self, path: Path) -> _Segment | None:
        seg = self.segments.get(path.name)
        if seg is None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            seg = _Segment(path, fd, self.offsets.get(path.name, 0))
            self.segments[path.name] = seg
        return seg

    def step(self) -> int:
        """Read, commit, publish and clean up once; returns the records handled."""
        budget = conf.agent_batch()
        records: list[spool.Record] = []
        advanced: dict[str, int] = {}
        for path in spool.segments(self.directory):
            if len(records) >= budget:
                break
            seg = self._segment(path)
            if seg is None:
                continue
            size = os.fstat(seg.fd).st_size
            if seg.offset >= size:
                if not seg.closed and spool.try_exclusive(seg.fd):
                    seg.closed = True
                    size = os.fstat(seg.fd).st_size  # no writer can append any more
                if seg.closed and seg.offset >= size:
                    self._delete(seg)
                    continue
                if seg.offset >= size:
                    continue
            want = budget - len(records)
            chunk = FIRST_READ
            while True:
                data = os.pread(seg.fd, min(size - seg.offset, chunk), seg.offset)
                final = seg.closed and seg.offset + len(data) >= size
                frames, consumed, skipped = spool.parse(
                    data, seg.offset, final=final, max_frames=want
                )
                if frames or consumed or chunk > FIRST_READ or seg.offset + len(data) >= size:
                    break
                # A frame bigger than the first read (an image): read at least the whole of it.
                chunk = max(READ_CHUNK, spool.frame_size(data))
            if skipped:
                self.stats["skipped_bytes"] += skipped
                log.warning("capture spool %s: %d unreadable bytes skipped", path.name, skipped)
            end = seg.offset + consumed
            for frame in frames:
                if len(records) >= budget:
                    end = frame.offset
                    break
                try:
                    records.append(spool.decode(frame.body))
                except ValueError as exc:
                    self.stats["bad_frames"] += 1
                    log.warning(
                        "capture spool %s: bad frame at %d: %s", path.name, frame.offset, exc
                    )
            if end != seg.offset:
                advanced[path.name] = end
        if records:
            written = outbox.write(
                records, statement_timeout_ms=STATEMENT_TIMEOUT_MS, lock_timeout_ms=LOCK_TIMEOUT_MS
            )
            fault_point("agent_after_commit")
            self.stats["records"] += len(records)
            self.stats["accepted"] += len(written.accepted)
            self.stats["again"] += len(written.again)
            self.stats["dropped"] += len(written.dropped)
            self.stats["batches"] += 1
        for name, end in advanced.items():
            self.segments[name].offset = end
            self.offsets[name] = end
        if advanced:
            self._save_offsets()
            fault_point("agent_after_offsets")
        if records:
            relay.enqueue_publish_many(written.accepted + written.again)
        return len(records) + len(advanced)

    def _delete(self, seg: _Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()
        with contextlib.suppress(OSError):
            os.close(seg.fd)
        self.segments.pop(seg.path.name, None)
        if self.offsets.pop(seg.path.name, None) is not None:
            self._save_offsets()
        self.stats["segments_deleted"] += 1


def drain(directory: Path | None = None, *, timeout: float = 10.0) -> Agent:
    """Run an agent in this process until the spool is empty (tests, benchmarks, scripts)."""
    agent = Agent(directory)
    if not agent.acquire(wait=False):
        raise RuntimeError(f"another capture agent holds {agent.directory / LOCK}")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and agent.step():
            pass
        counters.flush()
        return agent
    finally:
        agent.close()


PRIORITIES = ("normal", "low", "idle")


def set_priority(priority: str) -> None:
    """Lower this process's CPU priority ("low": nice 19, "idle": SCHED_IDLE; "normal": as is).

    On Linux both are per thread: it sets every thread there is (native libraries start some
    at import), and threads started later inherit it. On a saturated host the agent then waits
    for idle CPU instead of taking it from the servers; frames wait in the spool meanwhile
    (deferred, never dropped below COLLECTORS_SPOOL_MAX_BYTES), and it catches up when the
    servers idle.
    """
    if priority not in PRIORITIES:
        raise ValueError(f"unknown agent priority {priority!r} (one of {', '.join(PRIORITIES)})")
    if priority == "normal":
        return
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]  # no /proc: this thread (and those it starts)
    for tid in threads:
        try:
            if priority == "low":
                os.setpriority(os.PRIO_PROCESS, tid, 19)
            else:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except ProcessLookupError:
            continue  # a thread that ended meanwhile


def serve(directory: Path | None = None, stop: threading.Event | None = None) -> None:
    """The management command's body: wait for the lock, then run until stopped."""
    agent = Agent(directory)
    log.info("capture agent: waiting for the lock of %s", agent.directory)
    agent.acquire(wait=True)
    # The agent publishes whole committed batches: no need for the relay to linger for more.
    relay.get_relay().linger = 0.0
    log.info("capture agent: serving %s (pid %s)", agent.directory, os.getpid())
    if conf.background_threads():
        generations.start_thread()  # counters flush and cache checks
    try:
        agent.run(stop)
    finally:
        agent.close()
        connection.close()
