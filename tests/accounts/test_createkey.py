"""`manage.py createkey`: prints only the secret; the secret is a working key (PostgreSQL and SQLite)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from collectors_module.accounts.models import Key, KeyType, User

ROOT = Path(__file__).resolve().parents[2]


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("createkey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_createkey_creates_user_and_pat_and_prints_only_the_secret(api, db):
    out, err = run("dave", "--create-user")
    secret = out.strip()
    assert out.count("\n") == 1
    assert secret.startswith("clct_")
    assert "password" in err
    password = err.split("password:")[1].split()[0]
    user = User.objects.get(username="dave")
    assert user.check_password(password)
    key = Key.objects.get(owner=user)
    assert (key.type, key.scopes, key.app_id) == (KeyType.PAT, ["All"], None)
    assert secret not in err
    r = api.post("/v2/users/dave/apps", {"apps": [{"id": "first"}]}, key=secret)
    assert r["status"]["code"] == 10000


def test_createkey_app_key_with_scopes(api, alice):
    out, _ = run(
        "alice", "--app", "app1", "--scopes", "Predict", "Inputs:Add", "--description", "robot"
    )
    key = Key.objects.get(description="robot")
    assert key.type == KeyType.APP
    assert key.app_id == alice.app.pk
    assert key.scopes == ["Predict", "Inputs:Add"]
    r = api.get("/v2/myscopes", key=out.strip())
    assert r["app"]["id"] == "app1"
    assert r["scopes"] == ["Predict", "Inputs:Add"]


def test_createkey_for_existing_user_does_not_touch_the_user(alice):
    before = User.objects.get(pk=alice.user.pk).password
    _, err = run("alice", "--create-user")
    assert "already exists" in err
    assert User.objects.get(pk=alice.user.pk).password == before
    assert Key.objects.filter(owner=alice.user).count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "does not exist"),
        (["alice", "--app", "bobapp"], "app 'bobapp'"),
        (["alice", "--scopes", "Inputs:Everything"], "Inputs:Everything"),
        (["bad/name", "--create-user"], "invalid"),
    ],
)
def test_createkey_errors_are_clear_and_create_nothing(alice, bob, args, message):
    keys_before = Key.objects.count()
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert Key.objects.count() == keys_before
    assert not User.objects.filter(username__in=["nobody", "bad/name"]).exists()


def _manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_createkey_works_on_sqlite_and_exits_non_zero_on_errors(tmp_path):
    env = {
        **os.environ,
        "COLLECTORS_DEV": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'quick.sqlite3'}",
        "COLLECTORS_VAR_DIR": str(tmp_path / "var"),
    }
    migrated = _manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    made = _manage(env, "createkey", "erin", "--create-user", "--scopes", "Predict")
    assert made.returncode == 0, made.stderr[-2000:]
    secret = made.stdout.strip()
    assert secret.startswith("clct_")
    assert made.stdout == secret + "\n"
    assert "password" in made.stderr
    bad = _manage(env, "createkey", "erin", "--scopes", "Nope")
    assert bad.returncode != 0
    assert "Nope" in bad.stderr
    assert bad.stdout == ""
    missing = _manage(env, "createkey", "frank")
    assert missing.returncode != 0
    assert "frank" in missing.stderr
