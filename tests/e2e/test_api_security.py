"""Security over HTTP: API tokens, auth-failure rate limits (process and real Redis),
the hash-chained audit log, idempotency under concurrency, CORS."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from yinfin_flow import YinFinFlow
from yinfin_flow.app import create_app
from yinfin_flow.config import Settings
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.security import ApiToken, AuditLog, IdempotencyRecord
from yinfin_flow.db.types import utcnow
from yinfin_flow.engine import directory
from yinfin_flow.engine.directory import UserSpec
from yinfin_flow.extension import state
from yinfin_flow.security import idempotency, tokens
from yinfin_flow.security.ratelimit import FailureLimiter
from yinfin_flow.verify import verify

from ..factories import Org, org_in
from .conftest import FINANCE, make_app

API = "/api/v1"


def add_user(db: Database, uid: str, *roles: str) -> None:
    with db.unit_of_work() as s:
        directory.upsert_user(s, UserSpec(id=uid, name=uid.title(), company="ACME", department=None,
                                          manager=None), actor="test")
        for r in roles:
            directory.grant_role(s, uid, r, actor="test")


def issue(db: Database, uid: str, **kw) -> str:
    with db.unit_of_work() as s:
        return tokens.create_token(s, uid, name="t", created_by="test", **kw).token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def production_app(db: Database, **settings) -> Flask:
    settings.setdefault("budget_journal_approval", "off")  # adjustments book at once: one call, one effect
    app = create_app(Settings(database_url=db.url, env="production", secret_key="k", **settings))
    state(app).db.dispose()
    state(app).db = db
    return app


# -- tokens -----------------------------------------------------------------------------


def test_a_token_acts_as_its_user_with_directory_roles(db: Database):
    # both backends: PostgreSQL looks the token up outside a transaction
    org = org_in(db)
    add_user(db, "fay", "finance")
    add_user(db, "amy")
    fay, amy = issue(db, "fay"), issue(db, "amy")
    client = production_app(db).test_client()
    body = {"line_id": org.office_line, "amount": "5", "currency": "CNY", "reason": "pens"}
    assert client.post(f"{API}/budget/adjustments", json=body, headers=bearer(amy)).status_code == 403
    resp = client.post(f"{API}/budget/adjustments", json=body, headers=bearer(fay))
    assert resp.status_code == 201
    entries = client.get(f"{API}/budget/lines/{org.office_line}/entries", headers=bearer(amy)).get_json()
    assert entries["items"][0]["actor"] == "fay"
    with db.unit_of_work(readonly=True) as s:
        stored = {t.token_hash for t in s.scalars(select(ApiToken))}
    assert fay not in stored and tokens.hash_token(fay) in stored  # only the hash is kept


def test_expired_revoked_and_unknown_tokens_are_401(db: Database):
    org_in(db)
    add_user(db, "amy")
    old = issue(db, "amy", expires_at=utcnow() + timedelta(seconds=1),
                now=utcnow() - timedelta(seconds=5))
    live = issue(db, "amy")
    client = production_app(db).test_client()
    assert client.get(f"{API}/tasks", headers=bearer(live)).status_code == 200
    with db.unit_of_work() as s:
        s.execute(text("UPDATE api_tokens SET expires_at = :t WHERE token_hash = :h"),
                  {"t": utcnow() - timedelta(seconds=1), "h": tokens.hash_token(old)})
        tid = s.scalar(select(ApiToken.id).where(ApiToken.token_hash == tokens.hash_token(live)))
    assert client.get(f"{API}/tasks", headers=bearer(old)).status_code == 401
    own = client.delete(f"{API}/tokens/{tid}", headers=bearer(live))
    assert own.status_code == 200 and own.get_json()["revoked_at"]
    resp = client.get(f"{API}/tasks", headers=bearer(live))
    assert (resp.status_code, resp.get_json()["code"]) == (401, "unauthenticated")
    assert client.get(f"{API}/tasks", headers=bearer("yf_" + "x" * 43)).status_code == 401


def test_role_and_user_changes_apply_to_the_next_request(db: Database):
    # Nothing about a token is kept between requests: the next request after a role is
    # revoked, or the user deactivated, or the token revoked, sees it.
    org = org_in(db)
    add_user(db, "fay", "finance")
    fay = issue(db, "fay")
    client = production_app(db).test_client()
    body = {"line_id": org.office_line, "amount": "5", "currency": "CNY", "reason": "pens"}
    assert client.post(f"{API}/budget/adjustments", json=body, headers=bearer(fay)).status_code == 201
    with db.unit_of_work() as s:
        directory.revoke_role(s, "fay", "finance")
    assert client.post(f"{API}/budget/adjustments", json=body, headers=bearer(fay)).status_code == 403
    assert client.get(f"{API}/tasks", headers=bearer(fay)).status_code == 200
    with db.unit_of_work() as s:
        directory.set_active(s, "fay", False)
    assert client.get(f"{API}/tasks", headers=bearer(fay)).status_code == 401
    with db.unit_of_work() as s:
        directory.set_active(s, "fay", True)
    assert client.get(f"{API}/tasks", headers=bearer(fay)).status_code == 200
    with db.unit_of_work() as s:
        tokens.revoke(s, s.scalar(select(ApiToken.id).where(ApiToken.token_hash == tokens.hash_token(fay))))
    assert client.get(f"{API}/tasks", headers=bearer(fay)).status_code == 401


def test_the_api_issues_a_token_once(client: FlaskClient, app: Flask):
    db = state(app).db
    org_in(db)
    add_user(db, "amy")
    resp = client.post(f"{API}/tokens", json={"name": "laptop"}, headers={"X-Yinfin-User": "amy"})
    assert resp.status_code == 201
    token = resp.get_json()["token"]
    listed = client.get(f"{API}/tokens", headers={"X-Yinfin-User": "amy"}).get_json()["items"]
    assert [t["prefix"] for t in listed] == [token[:11]] and "token" not in listed[0]
    assert client.get(f"{API}/tasks", headers=bearer(token)).status_code == 200
    other = client.post(f"{API}/tokens", json={"user": "amy"}, headers={"X-Yinfin-User": "bob"})
    assert other.status_code == 403


# -- rate limits ------------------------------------------------------------------------


def test_failed_authentications_are_rate_limited_per_address(sqlite_db: Database):
    org_in(sqlite_db)
    add_user(sqlite_db, "amy")
    good = issue(sqlite_db, "amy")
    app = production_app(sqlite_db)
    app.extensions["yinfin_flow.limiter"] = FailureLimiter(limits={"addr": 3, "token": 100})
    client = app.test_client()
    for i in range(3):
        assert client.get(f"{API}/tasks", headers=bearer(f"yf_guess{i:040d}")).status_code == 401
    resp = client.get(f"{API}/tasks", headers=bearer(good))
    assert (resp.status_code, resp.get_json()["code"]) == (429, "too_many_failures")
    other = client.get(f"{API}/tasks", headers=bearer(good), environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200


def test_the_redis_counter_is_shared_between_processes(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    client.delete(*client.keys("yinfin:authfail:*") or ["none"])
    now = [1_000_000.0]
    a = FailureLimiter(redis.Redis.from_url(redis_url), limits={"addr": 2, "token": 2}, clock=lambda: now[0])
    b = FailureLimiter(redis.Redis.from_url(redis_url), limits={"addr": 2, "token": 2}, clock=lambda: now[0])
    keys = ["addr:10.1.1.1"]
    a.failed(keys)
    assert b.blocked(keys) is None
    b.failed(keys)
    assert a.blocked(keys) == "addr:10.1.1.1"  # both processes see both failures
    assert 0 < client.ttl(a._slot("addr:10.1.1.1")) <= 120  # windows expire on their own
    now[0] += 60  # the next window starts clean
    assert a.blocked(keys) is None


def test_the_redis_counter_checks_every_key_at_once(redis_url: str, sqlite_db: Database):
    client = redis.Redis.from_url(redis_url)
    client.delete(*client.keys("yinfin:authfail:*") or ["none"])
    limiter = FailureLimiter(redis.Redis.from_url(redis_url), limits={"addr": 3, "token": 2})
    keys = ["addr:10.2.2.2", "token:yf_abcdefgh"]
    limiter.failed(keys)
    assert limiter.blocked(keys) is None
    limiter.failed(keys[1:])
    assert limiter.blocked(keys) == "token:yf_abcdefgh"  # the second key decides
    assert limiter.blocked(keys[:1]) is None
    # Through the app: guesses from one address get 429 once its counter is full.
    org_in(sqlite_db)
    add_user(sqlite_db, "amy")
    good = issue(sqlite_db, "amy")
    app = production_app(sqlite_db, redis_url=redis_url)
    app.extensions["yinfin_flow.limiter"].limits = {"addr": 2, "token": 100}
    http = app.test_client()
    addr = {"REMOTE_ADDR": "10.3.3.3"}
    for i in range(2):
        assert http.get(f"{API}/tasks", headers=bearer(f"yf_guess{i:040d}"), environ_base=addr).status_code == 401
    assert http.get(f"{API}/tasks", headers=bearer(good), environ_base=addr).status_code == 429
    assert http.get(f"{API}/tasks", headers=bearer(good)).status_code == 200


# -- audit ------------------------------------------------------------------------------


def test_every_change_is_audited_and_the_chain_detects_tampering(client: FlaskClient, app: Flask,
                                                                 org: Org):
    db = state(app).db
    body = {"line_id": org.office_line, "amount": "5", "currency": "CNY", "reason": "pens"}
    client.post(f"{API}/budget/adjustments", json=body, headers={**FINANCE, "User-Agent": "oa/1.0"})
    client.post(f"{API}/budget/adjustments", json=body, headers={"X-Yinfin-User": "amy"})
    client.get(f"{API}/budget/lines")  # reads are not audited
    with db.unit_of_work(readonly=True) as s:
        rows = list(s.scalars(select(AuditLog).order_by(AuditLog.id)))
        assert verify(s) == []
    assert [(r.actor, r.method, r.status, r.detail) for r in rows] == [
        ("cfo", "POST", 202, None), ("amy", "POST", 403, "forbidden")]  # 202: proposed
    assert rows[0].user_agent == "oa/1.0" and rows[0].remote_addr == "127.0.0.1"
    assert rows[1].prev_hash == rows[0].hash
    # The table refuses edits; edit it behind the trigger's back and verify notices.
    with pytest.raises(Exception, match="append-only"), db.unit_of_work() as s:
        s.execute(text("UPDATE audit_log SET status = 200 WHERE id = 2"))
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.exec_driver_sql("UPDATE audit_log SET status = 201 WHERE id = 2")
    with db.unit_of_work(readonly=True) as s:
        problems = verify(s)
    assert [p.subject for p in problems] == ["audit row 2"]


# -- idempotency ------------------------------------------------------------------------


def test_concurrent_duplicates_do_the_action_once(pg_db: Database):
    org = org_in(pg_db)
    add_user(pg_db, "cfo")
    app = make_app(pg_db, budget_journal_approval="off")
    body = {"line_id": org.office_line, "amount": "7", "currency": "CNY", "reason": "chairs"}
    statuses: list[int] = []
    busy: list[tuple[str, str | None, object]] = []
    start = threading.Barrier(10)

    def call() -> None:
        c = app.test_client()
        start.wait()
        resp = c.post(f"{API}/budget/adjustments", json=body,
                      headers={**FINANCE, "Idempotency-Key": "same"})
        statuses.append(resp.status_code)
        if resp.status_code == 409:
            busy.append((resp.get_json()["code"], resp.headers.get("Retry-After"),
                         resp.get_json()["details"].get("retry_after")))

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {201, 409} and 201 in statuses
    # every "still running" answer says when to retry (it said nothing before)
    assert set(busy) <= {("idempotency_in_progress", "1", 1)}, busy
    line = app.test_client().get(f"{API}/budget/lines/{org.office_line}",
                                 headers=FINANCE).get_json()
    assert line["buckets"]["budget"] == "107.0000"  # added once
    replay = app.test_client().post(f"{API}/budget/adjustments", json=body,
                                    headers={**FINANCE, "Idempotency-Key": "same"})
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")


def test_the_idempotency_store_on_both_backends(db: Database):
    rid = idempotency.claim(db, "amy", "k", "POST", "/x", b"{}")
    with pytest.raises(idempotency.InProgress):
        idempotency.claim(db, "amy", "k", "POST", "/x", b"{}")
    with pytest.raises(idempotency.KeyReused):
        idempotency.claim(db, "amy", "k", "POST", "/x", b'{"other": 1}')
    assert isinstance(idempotency.claim(db, "bob", "k", "POST", "/x", b"{}"), int)  # per user
    idempotency.complete(db, rid, 201, "application/json", '{"ok": true}')
    assert idempotency.claim(db, "amy", "k", "POST", "/x", b"{}") == idempotency.Stored(
        201, "application/json", '{"ok": true}')
    # a claim left by a process that died is taken over after STALE_CLAIM
    old = utcnow() - idempotency.STALE_CLAIM - timedelta(seconds=1)
    dead = idempotency.claim(db, "amy", "d", "POST", "/x", b"{}", now=old)
    assert idempotency.claim(db, "amy", "d", "POST", "/x", b"{}") == dead
    # a server error frees the key
    idempotency.complete(db, dead, 503, "application/json", "{}")
    assert isinstance(idempotency.claim(db, "amy", "d", "POST", "/x", b"{}"), int)


def test_records_are_purged_after_the_retention_only(sqlite_db: Database):
    old = utcnow() - timedelta(hours=49)
    rid = idempotency.claim(sqlite_db, "amy", "k1", "POST", "/x", b"{}", now=old)
    idempotency.complete(sqlite_db, rid, 201, "application/json", "{}")
    idempotency.claim(sqlite_db, "amy", "k2", "POST", "/x", b"{}", now=utcnow() - timedelta(hours=23))
    with sqlite_db.unit_of_work() as s:
        assert idempotency.purge(s, retention=timedelta(hours=1)) == 1  # never below 24 h
        assert s.scalars(select(IdempotencyRecord.key)).all() == ["k2"]


def test_a_server_error_frees_the_key_for_a_retry(sqlite_db: Database):
    rid = idempotency.claim(sqlite_db, "amy", "k", "POST", "/x", b"{}")
    with pytest.raises(idempotency.InProgress):
        idempotency.claim(sqlite_db, "amy", "k", "POST", "/x", b"{}")
    idempotency.complete(sqlite_db, rid, 500, "application/json", "{}")
    assert isinstance(idempotency.claim(sqlite_db, "amy", "k", "POST", "/x", b"{}"), int)


# -- CORS -------------------------------------------------------------------------------


def test_cors_is_off_unless_origins_are_listed(sqlite_db: Database):
    off = make_app(sqlite_db).test_client()
    resp = off.get(f"{API}/health", headers={"Origin": "https://oa.example.com"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    host = Flask("h")
    host.config["YINFIN_CORS_ORIGINS"] = "https://oa.example.com"
    YinFinFlow(host, settings=Settings(database_url=sqlite_db.url))
    c = host.test_client()
    ok = c.get(f"{API}/health", headers={"Origin": "https://oa.example.com"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://oa.example.com"
    other = c.get(f"{API}/health", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_claims_purge_old_records_as_they_go(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(idempotency, "PURGE_EVERY", 2)
    idempotency.claim(sqlite_db, "amy", "old", "POST", "/x", b"{}", now=utcnow() - timedelta(days=3))
    idempotency.claim(sqlite_db, "amy", "new", "POST", "/x", b"{}")  # id 2: purges
    with sqlite_db.unit_of_work(readonly=True) as s:
        assert s.scalars(select(IdempotencyRecord.key)).all() == ["new"]


def test_the_token_command_prints_the_token_once(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch):
    from click.testing import CliRunner

    from yinfin_flow.cli import main

    org_in(sqlite_db)
    add_user(sqlite_db, "amy")
    add_user(sqlite_db, "admin")
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    result = CliRunner().invoke(main, ["token", "create", "amy", "--name", "oa", "--expires", "30",
                                       "--actor", "admin"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    with sqlite_db.unit_of_work(readonly=True) as s:
        row = tokens.authenticate(s, token)
        assert row is not None and row.user_id == "amy" and row.name == "oa"
    listed = CliRunner().invoke(main, ["token", "list"])
    assert token not in listed.output and token[:11] in listed.output
    assert CliRunner().invoke(main, ["token", "revoke", str(row.id)]).exit_code == 0
    with sqlite_db.unit_of_work(readonly=True) as s:
        assert tokens.authenticate(s, token) is None
    missing = CliRunner().invoke(main, ["token", "create", "nobody", "--actor", "admin"])
    assert missing.exit_code != 0 and "nobody" in missing.output
