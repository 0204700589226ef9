"""Managed-Redis deployments: TLS (``rediss://`` with a CA file) and least-privilege ACL users.

The TLS tests start the redis-server on PATH with ``--tls-port`` and a throwaway CA and server
certificate made by trustme; they are skipped (with the reason) when that binary was built without
TLS. The ACL tests run on every real server of the table: they create the users with the very ACL
lines README.md gives, then run the store, the CLI commands and the worker as them.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from redis_sessions import Folder, SessionStore, StoreConfig
from redis_sessions._cli_common import ENV_CA_FILE, ENV_URL
from redis_sessions.cli import cli
from redis_sessions.embedded import EmbeddedRedis, RedisBinary, free_port
from redis_sessions.samples import chat_turn
from redis_sessions.worker.jobs import sweep_expired_sessions

from .conftest import Clock

README = Path(__file__).resolve().parent.parent / "README.md"
PASSWORD = "acl-test-password"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={ENV_URL: "", ENV_CA_FILE: "", **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def exercise(store: SessionStore, user: str = "ada@example.com") -> None:
    """Every kind of operation the store sends, each checked."""
    folder = store.put_folder(user, Folder(id=str(uuid.uuid4()), name="algebra"))
    assert store.get_folder_data(folder.id, user) is not None
    sid = store.create_session(user, folder_id=folder.id)
    for turn in range(1, 4):
        role, text, actions = chat_turn(turn)
        store.append_message(sid, user, role, text, whiteboard_actions=actions)
    ctx = store.get_session_context(sid, user, history=2)
    assert ctx is not None and len(ctx.history) == 2
    assert store.get_whiteboard_state(sid, user) is not None
    ctx.session_goal = "managed"
    assert store.update_session_context(sid, user, ctx)
    store.modify(sid, user, lambda c: setattr(c, "high_cost_calls", 3))
    assert store.session_exists(sid, user)
    assert [r.session_id for r in store.list_user_sessions(user)] == [sid]
    assert len(store.get_messages(sid, user, limit=10)) == 3
    assert store.end_session(sid, user)
    assert store.check(repair=True).problems == {}
    assert store.cleanup_expired_sessions().deleted == 0
    assert store.delete_session(sid, user)
    assert store.delete_folder(folder.id, user)


def seed_expired(url: str, prefix: str, **options: Any) -> list[str]:
    clock = Clock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40))
    with SessionStore.from_url(
        url, config=StoreConfig(key_prefix=prefix), clock=clock, **options
    ) as store:
        return [str(store.create_session(f"old-{i}")) for i in range(3)]


def cli_round(url: str, prefix: str, env: dict[str, str] | None = None, *extra: str) -> None:
    """Every data command, through ``url``: each succeeds."""
    base = ["--url", url, "--prefix", prefix, *extra]
    with SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix), **_ca(extra)) as store:
        sid = str(store.create_session("ada"))
    for args in (
        ["list", "ada"],
        ["show", "ada", sid],
        ["keys", "ada"],
        ["check", "--repair"],
        ["sweep", "--dry-run"],
        ["delete", "ada", sid],
        ["check"],
    ):
        code, out, err = run(*args, *base, env=env)
        assert code == 0, (args, err)
        assert "Traceback" not in out + err


def _ca(extra: tuple[str, ...]) -> dict[str, Any]:
    return {"ssl_ca_certs": extra[1]} if extra[:1] == ("--ca-file",) else {}


# --------------------------------------------------------------------------- TLS


@dataclass
class TlsServer:
    server: EmbeddedRedis
    tls_port: int
    ca_file: str

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.tls_port}/0"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    trustme = pytest.importorskip("trustme", reason="trustme (dev extra) makes the test's CA")
    on_path = shutil.which("redis-server")
    if on_path is None:
        pytest.skip("TLS: no redis-server on PATH to start with --tls-port")
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls_port = free_port()
    server = EmbeddedRedis(
        RedisBinary(on_path, "PATH"),
        extra_args=[
            *("--tls-port", str(tls_port)),
            *("--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file)),
            *("--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no"),
        ],
    )
    try:
        server.start()
    except RuntimeError as exc:
        if "TLS" in str(exc) or "tls" in str(exc):
            pytest.skip(f"TLS: the redis-server on PATH was built without TLS ({exc})")
        raise
    yield TlsServer(server, tls_port, str(ca_file))
    server.stop()


def test_store_over_tls(tls_server: TlsServer) -> None:
    config = StoreConfig(key_prefix=f"tls{uuid.uuid4().hex[:6]}")
    with (
        SessionStore.from_url(tls_server.url, config=config, ssl_ca_certs=tls_server.ca_file) as a,
        SessionStore.from_url(tls_server.url, config=config, ssl_ca_certs=tls_server.ca_file) as b,
    ):
        exercise(a)
        # cache invalidation across processes runs over TLS too: b sees a's write at once
        sid = a.create_session("bob", initial_context={"session_goal": "one"})
        assert b.get_session(sid, "bob") is not None
        a.modify(sid, "bob", lambda c: setattr(c, "session_goal", "two"))
        deadline = dt.datetime.now() + dt.timedelta(seconds=2)
        while b.get_session_context(sid, "bob").session_goal != "two":  # type: ignore[union-attr]
            assert dt.datetime.now() < deadline, "b never saw a's write"
        a.delete_session(sid, "bob")


def test_the_ca_file_may_come_in_the_url(tls_server: TlsServer) -> None:
    url = f"{tls_server.url}?ssl_ca_certs={tls_server.ca_file}"
    with SessionStore.from_url(url, config=StoreConfig(key_prefix="tlsq")) as store:
        sid = store.create_session("ada")
        assert store.delete_session(sid, "ada")


def test_cli_over_tls_with_the_ca_file_option_or_variable(tls_server: TlsServer) -> None:
    prefix = f"tls{uuid.uuid4().hex[:6]}"
    cli_round(tls_server.url, prefix, None, "--ca-file", tls_server.ca_file)
    with_env = f"tle{uuid.uuid4().hex[:6]}"
    with SessionStore.from_url(
        tls_server.url, config=StoreConfig(key_prefix=with_env), ssl_ca_certs=tls_server.ca_file
    ) as store:
        store.create_session("ada")
    code, out, err = run(
        "list",
        "ada",
        "--url",
        tls_server.url,
        "--prefix",
        with_env,
        env={ENV_CA_FILE: tls_server.ca_file},
    )
    assert code == 0 and "SESSION" in out, err


def test_cli_over_tls_without_the_ca_is_one_line(tls_server: TlsServer) -> None:
    code, out, err = run("list", "ada", "--url", tls_server.url)
    assert code == 1 and "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1 and "certificate" in err.lower()
    code, _, err = run("list", "ada", "--url", tls_server.url, "--ca-file", "/nonexistent.pem")
    assert code == 2 and "does not exist" in err


def test_worker_over_tls(tls_server: TlsServer) -> None:
    prefix = f"tlw{uuid.uuid4().hex[:6]}"
    old = seed_expired(tls_server.url, prefix, ssl_ca_certs=tls_server.ca_file)
    result = sweep_expired_sessions(
        url=tls_server.url, key_prefix=prefix, ca_file=tls_server.ca_file
    )
    assert result["deleted"] == 3
    old = seed_expired(tls_server.url, prefix, ssl_ca_certs=tls_server.ca_file)
    code, _, err = run(
        "worker",
        "--burst",
        "--queue",
        f"q-{prefix}",
        "--url",
        tls_server.url,
        "--prefix",
        prefix,
        "--ca-file",
        tls_server.ca_file,
    )
    assert code == 0, err
    with redis.Redis.from_url(tls_server.url, ssl_ca_certs=tls_server.ca_file) as client:
        keys = StoreConfig(key_prefix=prefix)
        assert not any(
            client.exists(f"{keys.key_prefix}:{{u:old-{i}}}:s:{s}") for i, s in enumerate(old)
        )


# --------------------------------------------------------------------------- ACL


def readme_acl_line(user: str) -> list[str]:
    """The ``ACL SETUSER <user> ...`` line README.md gives, as arguments, with the test password."""
    text = README.read_text()
    match = re.search(rf"^ACL SETUSER {user} (.+)$", text, re.MULTILINE)
    assert match, f"README.md gives no ACL SETUSER {user} line"
    return [PASSWORD.join(t.split("CHANGE-ME")) for t in match.group(1).split()]


@pytest.fixture
def acl_server(real_server: EmbeddedRedis) -> Iterator[EmbeddedRedis]:
    """The real server, with the README's two users (removed afterwards)."""
    with redis.Redis(port=real_server.port) as admin:
        admin.execute_command("ACL", "LOG", "RESET")
        for user in ("rs-app", "rs-worker"):
            admin.execute_command("ACL", "SETUSER", user, "reset", *readme_acl_line(user))
        yield real_server
        denied = [
            entry
            for entry in admin.execute_command("ACL", "LOG")
            if _text(_field(entry, "username")) in ("rs-app", "rs-worker")
            # redis-py's CLIENT SETINFO on connect (it ignores the refusal; 7.0 logs it as "client")
            and _text(_field(entry, "object")) not in ("client|setinfo", "client")
        ]
        for user in ("rs-app", "rs-worker"):
            admin.execute_command("ACL", "DELUSER", user)
        keys = list(admin.scan_iter(match="rs:*")) + list(admin.scan_iter(match="rq:*"))
        if keys:
            admin.delete(*keys)
    assert not denied, f"commands the README's ACL refused: {denied}"


def _field(entry: Any, name: str) -> Any:
    if isinstance(entry, dict):
        return entry.get(name) or entry.get(name.encode())
    pairs = dict(zip(entry[::2], entry[1::2], strict=False))
    return pairs.get(name) or pairs.get(name.encode())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _url(server: EmbeddedRedis, user: str) -> str:
    return f"redis://{user}:{PASSWORD}@127.0.0.1:{server.port}/0"


def test_store_as_the_least_privileged_user(acl_server: EmbeddedRedis) -> None:
    url = _url(acl_server, "rs-app")
    admin = redis.Redis(port=acl_server.port)
    with SessionStore.from_url(url) as a, SessionStore.from_url(url) as b:
        exercise(a)
        sid = a.create_session("bob")
        assert b.get_session(sid, "bob") is not None  # b subscribed, as the same user
        assert a.delete_session(sid, "bob")
    with redis.Redis.from_url(url) as client:
        for command in (("KEYS", "*"), ("FLUSHALL",), ("CONFIG", "GET", "maxmemory")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("other-app:key", "x")  # outside the store's prefix
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.publish("other-channel", "x")
        admin.execute_command("ACL", "LOG", "RESET")  # these refusals were the test's own
    admin.close()


def test_cli_as_the_least_privileged_user(acl_server: EmbeddedRedis) -> None:
    cli_round(_url(acl_server, "rs-app"), "rs")


def test_the_prefix_limits_the_user(acl_server: EmbeddedRedis) -> None:
    code, out, err = run("list", "ada", "--url", _url(acl_server, "rs-app"), "--prefix", "tutor")
    assert code == 1 and "refused a command to this user (ACL)" in err
    assert "Traceback" not in out + err and len(err.strip().splitlines()) == 1
    with redis.Redis(port=acl_server.port) as admin:
        admin.execute_command("ACL", "LOG", "RESET")  # that refusal was the test's own


def test_worker_as_the_least_privileged_user(acl_server: EmbeddedRedis) -> None:
    admin_url = acl_server.url
    old = seed_expired(admin_url, "rs")
    result = sweep_expired_sessions(url=_url(acl_server, "rs-app"), key_prefix="rs")
    assert result["deleted"] == 3  # the job's store needs only the store's user
    old = seed_expired(admin_url, "rs")
    code, _, err = run("worker", "--burst", "--url", _url(acl_server, "rs-worker"))
    assert code == 0, err
    with redis.Redis.from_url(admin_url) as admin:
        assert not any(admin.exists(f"rs:{{u:old-{i}}}:s:{s}") for i, s in enumerate(old))


def test_the_acl_line_allows_every_command_the_scripts_send() -> None:
    """ACL checks the commands inside a script too: a script that starts sending a new command
    needs it in the README's line (found here before any server refuses it)."""
    lua = Path(__file__).resolve().parent.parent / "lua"
    sent = {
        name.lower()
        for path in lua.glob("*.lua")
        for name in re.findall(r"redis\.p?call\('([A-Za-z]+)'", path.read_text())
    }
    allowed = {t[1:] for t in readme_acl_line("rs-app") if t.startswith("+")}
    assert sent and sent <= allowed, sorted(sent - allowed)
