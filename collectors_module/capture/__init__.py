"""The capture engine: everything between a prediction and the input it becomes.

Serving side (the web and gRPC processes, on the request thread): `admission` matches the
prediction against `matching`'s index of active collectors, applies the sampling, inline
pre-queue workflow, size, backlog (`limits`) and rate rules, and `handoff` appends what it keeps
to this host's `spool`. Agent side (`manage.py captureagent`, one per host): `agent` reads the
spool, `outbox` commits the rows, `relay` publishes their ids. Worker side (Celery, `tasks`):
`worker.claim`, `worker.decide`, `worker.commit`; `sweeper` republishes what the broker lost.
`counters`, `selectors` and `services` serve the pages and the API. docs/capture-engine.md tells
the story with the delivery guarantees and the measurements.
"""
