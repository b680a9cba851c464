"""Caches that every process can trust: change generations kept by database triggers.

The predict path reads a few rows on every call (the key, the model version, the collectors of
that version). Each process caches them, and learns that a cached table changed anywhere through
`core_generation`: one row per *watched* table whose value database triggers replace with a new
random number whenever a row of that table is inserted, deleted or changed in a column that is
not ignored. On PostgreSQL the trigger is deferred to commit time, so no reader sees a new value
before the data it announces. A process reads that small table (one query, no ORM) at most every
`CACHE_CHECK_SECONDS`, in a background thread in servers, and clears the caches of the tables that
changed. Writers in this process call `changed()` so their own caches follow at once.

`SyncedCache` is the cache to use: a dict cleared on change, which never stores a value read
before a clear that happened while it was being read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import close_old_connections, connection, connections, transaction
from django.db.models.signals import post_delete, post_save

log = logging.getLogger("collectors.generations")

TABLE = "core_generation"


@dataclass(frozen=True)
class Watch:
    table: str
    ignore: tuple[str, ...]  # columns whose changes do not invalidate (e.g. last_used_at)


_watched: dict[str, Watch] = {}
_listeners: list[tuple[frozenset[str], Callable[[], None]]] = []
_chores: list[Callable[[], None]] = []


class _State:
    seen: dict[str, int] | None = None
    checked_at: float = float("-inf")
    thread: threading.Thread | None = None
    thread_pid: int | None = None
    stop: threading.Event | None = None
    wake: threading.Event = threading.Event()


_state = _State()
_threads_allowed = True
_check_lock = threading.Lock()
_thread_lock = threading.Lock()


# -- registration (AppConfig.ready) -----------------------------------------------------------


def watch(model, *, ignore: Iterable[str] = ()) -> None:
    """Keep a generation for `model`'s table (triggers are installed after every migrate).

    Saves and deletes through the ORM also clear this process's caches at once (signals);
    `QuerySet.update()` and bulk writes do not send signals: their callers call `changed()`."""
    table = model._meta.db_table
    columns = tuple(model._meta.get_field(name).column for name in ignore)
    _watched[table] = Watch(table=table, ignore=columns)
    ignored = frozenset(ignore)

    def saved(sender, update_fields=None, **kwargs):
        if update_fields is not None and set(update_fields) <= ignored:
            return
        changed(table)

    def deleted(sender, **kwargs):
        changed(table)

    post_save.connect(saved, sender=model, weak=False, dispatch_uid=f"generations.save.{table}")
    post_delete.connect(
        deleted, sender=model, weak=False, dispatch_uid=f"generations.delete.{table}"
    )


def on_change(tables: Iterable[str], callback: Callable[[], None]) -> None:
    """Call `callback()` (cheap, never raising) when any of these tables changed."""
    _listeners.append((frozenset(tables), callback))


def add_chore(chore: Callable[[], None]) -> None:
    """Run `chore()` after each check (a coarse periodic task such as flushing last-used times)."""
    if chore not in _chores:
        _chores.append(chore)


def tables_of(*models) -> frozenset[str]:
    return frozenset(m._meta.db_table for m in models)


# -- change notification ----------------------------------------------------------------------


def _notify(tables: set[str] | frozenset[str]) -> None:
    for wanted, callback in list(_listeners):
        if wanted & tables:
            try:
                callback()
            except Exception:  # a cache that cannot clear must not break the writer
                log.exception("cache invalidation callback failed")


def changed(*tables: str) -> None:
    """This process changed these tables: clear the caches now and once more after commit."""
    names = frozenset(tables)
    _notify(names)
    if connection.in_atomic_block:
        transaction.on_commit(lambda: _notify(names))


def reset_all() -> None:
    """Clear every cache and forget what was seen (tests, between test cases)."""
    _state.seen = None
    _state.checked_at = float("-inf")
    _notify(frozenset(_watched))


def _read() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT topic, value FROM {TABLE}")
        return {topic: int(value) for topic, value in cursor.fetchall()}


def check(*, force: bool = False) -> frozenset[str]:
    """Read the generations (when due, or now with `force`); clear the caches of changed tables.

    Returns the tables found changed. Never raises: on a database error the caches are kept and
    the check is retried at the next interval."""
    now = time.monotonic()
    if not force and now - _state.checked_at < float(settings.CACHE_CHECK_SECONDS):
        return frozenset()
    if not _check_lock.acquire(blocking=False):
        return frozenset()  # another thread is checking right now
    try:
        _state.checked_at = now
        try:
            if connection.in_atomic_block:
                with transaction.atomic():  # a savepoint: a failure cannot break the caller
                    current = _read()
            else:
                current = _read()
        except Exception as exc:
            log.warning("reading cache generations failed: %s", exc)
            return frozenset()
        seen = _state.seen
        _state.seen = current
        if seen is None:
            changed_tables = frozenset(_watched)
        else:
            changed_tables = frozenset(
                t for t in set(current) | set(seen) if current.get(t) != seen.get(t)
            )
        if changed_tables:
            _notify(changed_tables)
        return changed_tables
    finally:
        _check_lock.release()


def _run_chores() -> None:
    for chore in list(_chores):
        try:
            chore()
        except Exception:
            log.exception("periodic chore %r failed", chore)


def forbid_thread() -> None:
    """This process runs its chores on the calling thread (Celery workers: a thread of ours in a
    pool process gets in the way of Celery's own handling of broker reconnects)."""
    global _threads_allowed
    _threads_allowed = False


_setting_cache: dict[str, object] = {}


def _setting(name: str):
    """A setting read once per process (cleared by `setting_changed`, which tests send)."""
    try:
        return _setting_cache[name]
    except KeyError:
        value = _setting_cache[name] = getattr(settings, name)
        return value


def _forget_settings(**kwargs) -> None:
    _setting_cache.clear()


setting_changed.connect(_forget_settings, dispatch_uid="core.generations")


def threads_allowed() -> bool:
    return _threads_allowed and bool(_setting("BACKGROUND_THREADS"))


def ensure_fresh() -> None:
    """Called before a cache lookup: in servers the background thread keeps caches fresh (start
    it if needed); without background threads, check here when due."""
    if threads_allowed():
        if _state.thread_pid is None or not _thread_running():
            start_thread()
        return
    if time.monotonic() - _state.checked_at >= float(_setting("CACHE_CHECK_SECONDS")):
        check()
        _run_chores()


def _thread_running() -> bool:
    t = _state.thread
    return t is not None and _state.thread_pid == os.getpid() and t.is_alive()


def start_thread() -> None:
    """Start this process's checker thread (idempotent; re-started after a fork)."""
    if not _threads_allowed:
        return
    with _thread_lock:
        if _thread_running():
            return
        _state.seen = None  # a forked child must not trust its parent's view
        stop = threading.Event()
        _state.stop = stop
        _state.thread_pid = os.getpid()
        _state.thread = threading.Thread(
            target=_loop, args=(stop,), name="cache-generations", daemon=True
        )
        _state.thread.start()


def poke() -> None:
    """Run the background thread's check and chores now rather than at the next interval."""
    _state.wake.set()


def stop_thread(timeout: float = 5.0) -> None:
    """Stop the checker thread (tests; before the database goes away)."""
    with _thread_lock:
        thread, stop = _state.thread, _state.stop
        _state.thread = _state.stop = None
        _state.thread_pid = None
    if stop is not None:
        stop.set()
        _state.wake.set()
    if thread is not None and thread.is_alive():
        thread.join(timeout)


def _loop(stop: threading.Event) -> None:
    try:
        while True:
            try:
                close_old_connections()
                check(force=True)
                _run_chores()
            except Exception:  # pragma: no cover - keep checking
                log.exception("cache generation checker")
            _state.wake.wait(max(0.01, float(settings.CACHE_CHECK_SECONDS)))
            _state.wake.clear()
            if stop.is_set():
                break
    finally:
        connection.close()


# -- the cache ----------------------------------------------------------------------------------

_MISSING = object()


class SyncedCache:
    """A bounded dict cleared whenever one of `tables` changes (here or in any process).

    `get(key, load)` returns the cached value or `load()`'s, storing it unless a clear happened
    while `load()` ran (so a value read before a change is never kept after it)."""

    def __init__(self, name: str, tables: Iterable[str], *, max_entries: int | None = None):
        self.name = name
        self._data: dict[Hashable, Any] = {}
        self._epoch = 0
        self._lock = threading.Lock()
        self._max = max_entries
        self.hits = 0
        self.misses = 0
        on_change(tables, self.clear)

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._data = {}

    def get(self, key: Hashable, load: Callable[[], Any], *, store_none: bool = True) -> Any:
        """The cached value, or `load()`'s (stored; a None only with `store_none`)."""
        ensure_fresh()
        value = self._data.get(key, _MISSING)
        if value is not _MISSING:
            self.hits += 1
            return value
        self.misses += 1
        epoch = self._epoch
        value = load()
        if value is not None or store_none:
            self.put(key, value, epoch=epoch)
        return value

    def peek(self, key: Hashable, default: Any = None) -> Any:
        return self._data.get(key, default)

    def epoch(self) -> int:
        return self._epoch

    def put(self, key: Hashable, value: Any, *, epoch: int | None = None) -> None:
        limit = self._max if self._max is not None else int(settings.CACHE_MAX_ENTRIES)
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return
            if len(self._data) >= limit:
                self._data = {}  # crude but bounded; the hot entries come back at once
            self._data[key] = value

    def __len__(self) -> int:
        return len(self._data)


# -- triggers ------------------------------------------------------------------------------------

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION core_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO {TABLE} (topic, value) VALUES (TG_TABLE_NAME, floor(random() * 9e18)::bigint)
  ON CONFLICT (topic) DO UPDATE SET value = EXCLUDED.value;
  RETURN NULL;
END $$;
"""


def _trigger_sql(vendor: str, w: Watch, columns: list[str]) -> list[str]:
    t = w.table
    if vendor == "postgresql":
        ignored = ", ".join(f"'{c}'" for c in w.ignore)
        when = (
            f"WHEN (to_jsonb(OLD) - ARRAY[{ignored}]::text[] IS DISTINCT FROM "
            f"to_jsonb(NEW) - ARRAY[{ignored}]::text[])"
            if w.ignore
            else "WHEN (OLD.* IS DISTINCT FROM NEW.*)"
        )
        return [
            f'DROP TRIGGER IF EXISTS core_gen_w ON "{t}"',
            f'DROP TRIGGER IF EXISTS core_gen_u ON "{t}"',
            f'CREATE CONSTRAINT TRIGGER core_gen_w AFTER INSERT OR DELETE ON "{t}" '
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION core_generation_bump()",
            f'CREATE CONSTRAINT TRIGGER core_gen_u AFTER UPDATE ON "{t}" '
            f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {when} "
            "EXECUTE FUNCTION core_generation_bump()",
        ]
    bump = (
        f"INSERT INTO {TABLE} (topic, value) VALUES ('{t}', random()) "
        "ON CONFLICT(topic) DO UPDATE SET value = excluded.value;"
    )
    watched = ", ".join(f'"{c}"' for c in columns if c not in w.ignore)
    out = []
    for suffix, event in (("i", "INSERT"), ("d", "DELETE"), ("u", f"UPDATE OF {watched}")):
        name = f"core_gen_{t}_{suffix}"
        out.append(f'DROP TRIGGER IF EXISTS "{name}"')
        out.append(f'CREATE TRIGGER "{name}" AFTER {event} ON "{t}" BEGIN {bump} END')
    return out


def install_triggers(using: str = "default") -> None:
    """(Re)create the triggers of every watched table; idempotent (run after every migrate)."""

    conn = connections[using]
    tables = set(conn.introspection.table_names())
    if TABLE not in tables:
        return
    with transaction.atomic(using=using), conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(_PG_FUNCTION)
        for w in _watched.values():
            if w.table not in tables:
                continue
            columns = [c.name for c in conn.introspection.get_table_description(cursor, w.table)]
            for sql in _trigger_sql(conn.vendor, w, columns):
                cursor.execute(sql)
