#!/usr/bin/env bash
# README command 2: run the whole test suite (real PostgreSQL, Redis, Celery workers, Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
export COLLECTORS_DEV=1
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/collectors}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/1}"
exec .venv/bin/python -m pytest "$@"
