#!/usr/bin/env bash
# Quick start: run Collectors on this machine with nothing but Python 3.11+.
#
#   bash scripts/quickstart.sh            # web on http://127.0.0.1:8000 (PORT=9000 to change)
#
# Creates .venv (if missing), installs requirements.txt, migrates a SQLite database in var/,
# seeds a demo workspace (user, app, key, collector), then runs the web server, the gRPC server,
# the capture agent (it commits the captures the servers spool in var/spool) and a Celery worker
# (with the beat scheduler) on an embedded filesystem broker. Ctrl-C stops them all.
# Safe to run again: the seed is idempotent and nothing is reinstalled unless requirements change.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${PORT:-8000}"
GRPC_PORT="${GRPC_PORT:-50443}"
HOST="127.0.0.1"
VAR="$ROOT/var"
LOG_DIR="$VAR/log"
mkdir -p "$VAR" "$LOG_DIR"

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# --- Python + virtual environment ----------------------------------------------------------
PYTHON=""
for candidate in "${PYTHON_BIN:-}" python3.13 python3.12 python3.11 python3; do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    PYTHON="$(command -v "$candidate")"
    break
  fi
done
[ -n "$PYTHON" ] || die "Python 3.11 or newer is required (set PYTHON_BIN to its path)"

if [ ! -x .venv/bin/python ]; then
  say "Creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv || die "could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)"
fi
VPY="$ROOT/.venv/bin/python"

REQ_HASH="$("$VPY" -c 'import hashlib,sys; print(hashlib.sha256(open("requirements.txt","rb").read()).hexdigest())')"
STAMP=".venv/.requirements.sha256"
if [ -n "${QUICKSTART_SKIP_INSTALL:-}" ]; then
  say "Skipping the install (QUICKSTART_SKIP_INSTALL is set)"
elif [ "$(cat "$STAMP" 2>/dev/null || true)" != "$REQ_HASH" ]; then
  say "Installing requirements (first run takes a few minutes)"
  "$VPY" -m pip install --disable-pip-version-check -q -r requirements.txt
  echo "$REQ_HASH" > "$STAMP"
else
  say "Requirements already installed"
fi

# --- Settings for the quick start ----------------------------------------------------------
if [ ! -s "$VAR/secret_key" ]; then
  (umask 077 && "$VPY" -c 'import secrets; print(secrets.token_urlsafe(50))' > "$VAR/secret_key")
fi
export COLLECTORS_DEV=1
export DJANGO_SETTINGS_MODULE=collectors_module.settings
export SECRET_KEY="$(cat "$VAR/secret_key")"
export DATABASE_URL="sqlite:///var/quickstart.sqlite3"
export CELERY_BROKER_URL="filesystem://"
export COLLECTORS_VAR_DIR="$VAR"
export ALLOWED_HOSTS="${ALLOWED_HOSTS:-localhost,127.0.0.1,[::1]}"
export COLLECTORS_PUBLIC_URL="${COLLECTORS_PUBLIC_URL:-http://$HOST:$PORT}"
export PYTHONUNBUFFERED=1
# Password-reset mail is printed on the web server's console.
export EMAIL_BACKEND="${EMAIL_BACKEND:-django.core.mail.backends.console.EmailBackend}"
# The same settings for commands run beside the quick start (README "Using the API"):
#   set -a && . var/quickstart.env && set +a
(umask 077 && {
  echo "# Written by scripts/quickstart.sh: the quick start's settings, for manage.py commands."
  for name in COLLECTORS_DEV DJANGO_SETTINGS_MODULE SECRET_KEY DATABASE_URL CELERY_BROKER_URL \
      COLLECTORS_VAR_DIR ALLOWED_HOSTS COLLECTORS_PUBLIC_URL; do
    printf "%s=%q\n" "$name" "${!name}"
  done
} > "$VAR/quickstart.env")

say "Migrating var/quickstart.sqlite3"
"$VPY" manage.py migrate --no-input -v 0

say "Collecting static files into var/staticfiles (served by WhiteNoise)"
"$VPY" manage.py collectstatic --no-input -v 0

say "Seeding the demo workspace"
SEED_OUT="$("$VPY" manage.py seed_demo)"
echo "$SEED_OUT" | sed 's/^/    /'
field() { echo "$SEED_OUT" | sed -n "s/^$1:[[:space:]]*//p"; }
DEMO_PASSWORD="$(field password)"
DEMO_KEY="$(field key)"
DEMO_PREDICT="$(field predict)"
DEMO_REQUEST="$(field request)"

# --- Processes -----------------------------------------------------------------------------
# Each child runs in its own process group (job control on), so Ctrl-C stops it with
# everything it started.
set -m
PIDS=()
cleanup() {
  trap - INT TERM EXIT
  if [ "${#PIDS[@]}" -gt 0 ]; then
    say "Stopping"
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      alive=0
      for pid in "${PIDS[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.2
    done
    for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if "$VPY" -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('$HOST', $PORT)) == 0 else 1)"; then
  die "port $PORT is already in use (run with PORT=<another port>)"
fi

say "Starting the web server on http://$HOST:$PORT (log: var/log/web.log)"
"$VPY" manage.py runserver "$HOST:$PORT" --noreload >"$LOG_DIR/web.log" 2>&1 &
PIDS+=("$!")

if [ ! -s "$VAR/certs/ca.pem" ]; then
  "$VPY" manage.py devcert "$VAR/certs" >/dev/null
fi
if "$VPY" -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('$HOST', $GRPC_PORT)) == 0 else 1)"; then
  die "port $GRPC_PORT is already in use (run with GRPC_PORT=<another port>)"
fi
say "Starting the gRPC server (TLS) on localhost:$GRPC_PORT (log: var/log/grpc.log)"
"$VPY" manage.py grpcserver --address "$HOST:$GRPC_PORT" --cert "$VAR/certs/server.pem" \
  --key "$VAR/certs/server.key" >"$LOG_DIR/grpc.log" 2>&1 &
PIDS+=("$!")

# The agent and the worker run at a lower CPU priority than the servers: on one machine, the
# post-queue workflows (a caption is a classifier and an OCR pass) would otherwise take the cores
# from the predictions they capture. The worker runs in the idle scheduling class where Linux has
# it (chrt --idle: CPU only when no server wants it), otherwise niced; it catches up whenever the
# servers are idle, and what it has not ingested yet waits, durable, in the broker.
if command -v chrt >/dev/null 2>&1 && chrt --idle 0 true 2>/dev/null; then
  WORKER_PRIORITY=(chrt --idle 0)
else
  WORKER_PRIORITY=(nice -n 10)
fi
say "Starting the capture agent (log: var/log/agent.log)"
nice -n 10 "$VPY" manage.py captureagent >"$LOG_DIR/agent.log" 2>&1 &
PIDS+=("$!")

say "Starting a Celery worker with the sweeper schedule (log: var/log/worker.log)"
"${WORKER_PRIORITY[@]}" "$ROOT/.venv/bin/celery" -A collectors_module worker -B --pool solo --loglevel INFO \
  -s "$VAR/celerybeat-schedule" >"$LOG_DIR/worker.log" 2>&1 &
PIDS+=("$!")
set +m  # back to one process group: Ctrl-C reaches this script, whose trap stops the children

for _ in $(seq 1 150); do
  if "$VPY" -c "import urllib.request,sys; urllib.request.urlopen('http://$HOST:$PORT/accounts/login/', timeout=1)" 2>/dev/null; then
    break
  fi
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$LOG_DIR"/*.log >&2; die "a process exited early"; }
  done
  sleep 0.2
done

cat <<EOF

  Collectors is running.

    URL:       http://$HOST:$PORT/
    Log in:    user demo, password $DEMO_PASSWORD
    API key:   $DEMO_KEY

  Predict as demo with general-image-recognition, the product page's source model, on a photo of
  an espresso (the request body is in $DEMO_REQUEST); the demo collector captures the
  input, captions it, and it appears with its concepts and caption in the demo-app inputs gallery
  (http://$HOST:$PORT/apps/demo-app/) within a second:

    curl -s -X POST "http://$HOST:$PORT$DEMO_PREDICT" \\
      -H "Authorization: Key $DEMO_KEY" -H "Content-Type: application/json" \\
      -d @"$DEMO_REQUEST"

  Clarifai gRPC clients (clarifai-grpc 12.2.11, e.g. the product page's Python code, and the
  Node.js client clarifai-nodejs-grpc) need only:

    export CLARIFAI_GRPC_BASE=localhost:$GRPC_PORT
    export GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=$VAR/certs/ca.pem

  and clarifai-grpc's JSON channel: export CLARIFAI_API_BASE=http://$HOST:$PORT

  Clarifai's Python SDK (clarifai 12.4.1) reads CLARIFAI_API_BASE as the gRPC address instead
  (https:// selects TLS; use a separate shell from the JSON channel's setting):

    export CLARIFAI_API_BASE=https://localhost:$GRPC_PORT
    export CLARIFAI_ROOT_CERTIFICATES_PATH=$VAR/certs/ca.pem
    export CLARIFAI_PAT=$DEMO_KEY CLARIFAI_USER_ID=demo

  Press Ctrl-C to stop the web server, the gRPC server, the capture agent and the worker.

EOF

# Wait until Ctrl-C or until one of the processes stops.
while true; do
  for pid in "${PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      printf 'quickstart: a process stopped; last log lines:\n' >&2
      tail -n 20 "$LOG_DIR"/*.log >&2
      exit 1
    fi
  done
  # `wait` (unlike a foreground command) returns at once when a trapped signal arrives.
  sleep 1 &
  wait $! || true
done
