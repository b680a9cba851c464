"""Best-effort publish of committed capture ids to the workers, off the caller's thread.

`enqueue_publish(capture_id)` is called after a capture row commits (by the capture agent, by an
inline hand-off, by a worker handing captures back). It puts the id on a bounded in-memory queue
and returns; a daemon thread drains the queue and publishes `collectors.process_batch` (or
`collectors.process_capture` for a single id) with short broker timeouts. A full queue or a broker
outage only drops the publish (counted in `stats()`): the row is durable and the sweeper publishes
it again.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable

from collectors_module.celery import app
from collectors_module.core.faults import fault_point

from . import conf

log = logging.getLogger("collectors.relay")

TASK_ONE = "collectors.process_capture"
TASK_BATCH = "collectors.process_batch"


def publish_ids(ids: Iterable[str], *, connection=None, batch: int | None = None) -> int:
    """Publish capture ids in batches (blocking; for the relay thread and the sweeper).

    Returns the number of ids published; raises the broker's error on failure.
    """
    ids = [str(i) for i in ids]
    size = max(1, batch or conf.batch_size())
    if connection is None:  # the sweeper: its own short-timeout connection, not the shared pool
        if not ids:
            return 0
        with short_timeout_connection() as conn:
            return publish_ids(ids, connection=conn, batch=size)
    sent = 0
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        if len(chunk) == 1:
            app.send_task(
                TASK_ONE, kwargs={"capture_id": chunk[0]}, connection=connection, retry=False
            )
        else:
            app.send_task(
                TASK_BATCH, kwargs={"capture_ids": chunk}, connection=connection, retry=False
            )
        sent += len(chunk)
    return sent


def short_timeout_connection():
    """A broker connection that fails fast (short socket timeouts, at most one reconnect)."""
    return app.connection_for_write(
        transport_options={
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
            "socket_connect_timeout": 1,
            "socket_timeout": 2,
        },
        connect_timeout=1,
    )


class Relay:
    """One per process (re-created after fork): a bounded queue and its publishing thread."""

    def __init__(self, maxsize: int | None = None):
        self.pid = os.getpid()
        self.queue: queue.Queue[str] = queue.Queue(maxsize=maxsize or conf.relay_queue_size())
        self.batch = conf.batch_size()
        self.linger = conf.relay_linger_seconds()
        self.stats = {"enqueued": 0, "published": 0, "dropped_queue_full": 0, "dropped_broker": 0}
        self._conn = None
        self._handled = 0  # ids published or dropped by the thread
        self.thread = threading.Thread(target=self._run, name="collectors-relay", daemon=True)
        self.thread.start()

    def put(self, capture_id) -> None:
        try:
            self.queue.put_nowait(str(capture_id))
            self.stats["enqueued"] += 1
        except queue.Full:
            self.stats["dropped_queue_full"] += 1

    # -- the publishing thread ------------------------------------------------------------------

    def _connection(self):
        if self._conn is None:
            self._conn = short_timeout_connection()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.release()

    def _run(self) -> None:
        failures = 0
        while True:
            first = self.queue.get()
            ids = [first]
            # Linger a little for more ids: one message per batch costs one publish (~1 ms of
            # CPU) instead of one per capture.
            deadline = time.monotonic() + self.linger
            while len(ids) < self.batch:
                left = deadline - time.monotonic()
                try:
                    ids.append(
                        self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
                    )
                except queue.Empty:
                    break
            try:
                fault_point("after_commit_before_publish")
                publish_ids(ids, connection=self._connection(), batch=self.batch)
                self.stats["published"] += len(ids)
                failures = 0
            except Exception as exc:
                self.stats["dropped_broker"] += len(ids)
                failures += 1
                self._drop_connection()
                log.warning(
                    "relay: publish of %d capture(s) failed (%s); the sweeper will retry",
                    len(ids),
                    exc,
                )
                # Do not spin against a dead broker; drop what arrives meanwhile (the rows are durable).
                time.sleep(min(5.0, 0.2 * failures))
            finally:
                self._handled += len(ids)

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until what was enqueued so far is handled (tests, scripts, exit). True if so."""
        target = self.stats["enqueued"]
        deadline = time.monotonic() + timeout
        while self._handled < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True


_relay: Relay | None = None
_relay_lock = threading.Lock()


def get_relay() -> Relay:
    global _relay
    relay = _relay
    if relay is None or relay.pid != os.getpid() or not relay.thread.is_alive():
        with _relay_lock:
            relay = _relay
            if relay is None or relay.pid != os.getpid() or not relay.thread.is_alive():
                relay = _relay = Relay()
    return relay


def enqueue_publish(capture_id) -> None:
    """Ask for `capture_id` to be published to the workers. Returns at once; never raises."""
    try:
        get_relay().put(capture_id)
    except Exception:  # never into the prediction
        log.exception("relay: enqueue failed")


def enqueue_publish_many(ids) -> None:
    """`enqueue_publish` for each id."""
    for capture_id in ids:
        enqueue_publish(capture_id)


def reset() -> None:
    """Forget this process's relay (tests, or after the broker settings changed)."""
    global _relay
    with _relay_lock:
        _relay = None


def stats() -> dict:
    relay = _relay
    return dict(relay.stats) if relay is not None and relay.pid == os.getpid() else {}


def flush(timeout: float = 2.0) -> bool:
    relay = _relay
    if relay is None or relay.pid != os.getpid():
        return True
    return relay.flush(timeout)


@atexit.register
def _flush_at_exit() -> None:  # pragma: no cover - process exit
    with contextlib.suppress(Exception):
        flush(1.0)
