"""Identifiers: Clarifai-style public ids and their validation."""

from __future__ import annotations

import os
import random
import re
import secrets

from .errors import SC, ApiError

# Clarifai ids: letters, digits, '_' and '-', must start with a letter or digit; no NUL, no '/'.
# Full matches only (fullmatch / \Z): `$` would also accept a trailing newline.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


# Ids need to be unique, not secret (secrets come from `new_secret`): a generator seeded from
# the OS, re-seeded after a fork. os.urandom releases the GIL, and in a server whose threads are
# all busy every such call then waits its turn to take the GIL back (py-spy showed uuid4 at 10 %
# of the gRPC server's samples under load).
_rng = random.Random()
_rng_pid = os.getpid()


def random_bits(n: int) -> int:
    """`n` random bits for identifiers (unique, not secret)."""
    global _rng_pid
    if _rng_pid != os.getpid():
        _rng.seed()
        _rng_pid = os.getpid()
    return _rng.getrandbits(n)


def new_hex_id() -> str:
    """32 lower-case hex characters, the shape of Clarifai version and key ids."""
    return f"{random_bits(128):032x}"


SECRET_PREFIX = "clct_"  # every key secret starts with it (logs are scrubbed for it)


def new_secret(prefix: str = SECRET_PREFIX) -> str:
    """A key secret: >=256 bits from the OS CSPRNG behind a recognisable prefix."""
    return prefix + secrets.token_urlsafe(32)


def looks_like_secret(value: str) -> bool:
    return (value or "").startswith(SECRET_PREFIX)


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.fullmatch(value or ""))


def validate_id(
    value: str, what: str = "id", code: int = SC.CONN_INVALID_REQUEST, field: str = ""
) -> str:
    """Return `value` if it is a well-formed id, else raise an ApiError naming the field."""
    if not value:
        raise ApiError(code, f"{what} is required", field=field or what)
    if not is_valid_id(value):
        raise ApiError(
            code,
            f"{what} '{value[:64]}' is invalid: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit",
            field=field or what,
        )
    return value
