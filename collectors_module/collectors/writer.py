"""The per-process capture writer: accepted captures are committed off the request thread.

The prediction only appends admitted rows to a bounded queue (microseconds); a daemon thread
writes them in batches through `capture._write` (own autocommit connection, bounded timeouts) and
hands the committed ids to the relay. A full queue drops the capture with the counted reason
`capture_queue_full`. Rows still queued when a process is SIGKILLed were never accepted (the
guarantee starts at the commit); on a normal exit the queue is flushed first.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time

from . import conf

log = logging.getLogger("collectors.writer")
QUEUE_FULL = "capture_queue_full"


class Writer:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.Queue = queue.Queue(maxsize=conf.capture_queue_size())
        self.batch = max(1, conf.capture_write_batch())
        self.stats = {"queued": 0, "written_batches": 0, "dropped_queue_full": 0}
        self._handled = 0
        self.thread = threading.Thread(
            target=self._run, name="collectors-capture-writer", daemon=True
        )
        self.thread.start()

    def put(self, row) -> bool:
        try:
            self.queue.put_nowait(row)
        except queue.Full:
            self.stats["dropped_queue_full"] += 1
            return False
        self.stats["queued"] += 1
        return True

    def _run(self) -> None:
        from django.db import close_old_connections

        from .capture import _write

        while True:
            rows = [self.queue.get()]
            while len(rows) < self.batch:
                try:
                    rows.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                _write(rows)  # never raises: failures become counted drops
                self.stats["written_batches"] += 1
            except Exception:
                log.exception("capture writer: batch of %d failed", len(rows))
            finally:
                self._handled += len(rows)
                close_old_connections()

    def flush(self, timeout: float = 5.0) -> bool:
        target = self.stats["queued"]
        deadline = time.monotonic() + timeout
        while self._handled < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True


_writer: Writer | None = None
_lock = threading.Lock()


def get_writer() -> Writer:
    global _writer
    w = _writer
    if w is None or w.pid != os.getpid() or not w.thread.is_alive():
        with _lock:
            w = _writer
            if w is None or w.pid != os.getpid() or not w.thread.is_alive():
                w = _writer = Writer()
    return w


def flush(timeout: float = 5.0) -> bool:
    """Wait until every capture queued so far is written (tests, benchmarks, exit)."""
    w = _writer
    return True if w is None or w.pid != os.getpid() else w.flush(timeout)


@atexit.register
def _flush_at_exit() -> None:
    with contextlib.suppress(Exception):  # interpreter shutdown: nothing more to do
        flush(2.0)
