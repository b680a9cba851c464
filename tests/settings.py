"""Settings of the test process: the product's settings, with the test process's choices.

Subprocesses the tests start (workers, the capture agent, servers) use the product's own
`collectors_module.settings`, configured through their environment like any deployment.
"""

import os

os.environ.setdefault("COLLECTORS_DEV", "1")

from collectors_module.settings import *  # noqa: F403
from collectors_module.settings import DATABASES

# Test data lives in each test's own transaction: periodic chores (cache checks, counter
# flushes, backlog counts) run on the calling thread when due, where that transaction is
# visible, instead of in background threads.
BACKGROUND_THREADS = False
# The request thread writes the capture row itself, so a test reads it right after predicting;
# the spool and the capture agent are tested in their own tests, with a real agent process.
COLLECTORS_CAPTURE_HANDOFF = "inline"
# No persistent connections: server threads of live-server tests come and go.
DATABASES["default"]["CONN_MAX_AGE"] = 0
# Tests create many users; a slow hasher there only costs time, it proves nothing.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Every test client comes from 127.0.0.1: the guessing throttles would soon trip over tests
# that send bad keys on purpose. Their own tests set low rates with the `settings` fixture.
THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = "100000/m"
THROTTLE_LOGIN_FAILURES_PER_ADDRESS = "100000/m"
THROTTLE_BAD_KEYS_PER_ADDRESS = "100000/m"
