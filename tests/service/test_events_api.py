"""Events in the state database and the REST API: stored and listed with filters, ongoing
anomalies, the background writer (a failing database drops, never blocks), the 0005
migration on SQLite and PostgreSQL, refusals with clear messages."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, text

import batchscore.state
from batchscore.errors import InputError, SpecError
from batchscore.state import create_database
from batchscore.state.events import (
    Event,
    EventWriter,
    list_events,
    ongoing_events,
    parse_since,
    record_events,
)

T0 = 1_700_000_000.0
MIGRATIONS = Path(batchscore.state.__file__).with_name("migrations")


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def ev(kind: str = "latency", state: str = "raised", subject: str = "toy/3", at: float = T0,
       source: str = "serving", severity: str = "warning", **details: object) -> Event:
    return Event(source=source, kind=kind, severity=severity, state=state, subject=subject,
                 message=f"{kind} {state}", details=dict(details), created_at=at)


def history(engine) -> list[Event]:  # type: ignore[no-untyped-def]
    """toy/3: latency raised then resolved, error_rate raised (ongoing); other/1: latency
    raised (ongoing); a job notice."""
    return record_events(engine, [
        ev("latency", at=T0, p95=0.4),
        ev("error_rate", at=T0 + 10, severity="critical"),
        ev("latency", "resolved", at=T0 + 20, severity="info"),
        ev("latency", subject="other/1", at=T0 + 30),
        ev("finished", "notice", source="jobs", subject="job-1", at=T0 + 40, severity="info"),
    ])


def check_store(engine) -> None:  # type: ignore[no-untyped-def]
    stored = history(engine)
    assert [e.id for e in stored] == sorted(e.id for e in stored) and stored[0].id
    every = list_events(engine)
    assert [e.created_at for e in every] == [T0 + 40, T0 + 30, T0 + 20, T0 + 10, T0]
    assert every[-1] == stored[0] and every[-1].details == {"p95": 0.4}
    assert [e.created_at for e in list_events(engine, since=T0 + 20)] == [T0 + 40, T0 + 30,
                                                                        T0 + 20]
    assert [e.subject for e in list_events(engine, kind="latency")] == ["other/1", "toy/3",
                                                                        "toy/3"]
    assert [e.kind for e in list_events(engine, source="jobs")] == ["finished"]
    assert len(list_events(engine, subject="toy/3", limit=2)) == 2
    ongoing = ongoing_events(engine)
    assert [(e.subject, e.kind) for e in ongoing] == [("other/1", "latency"),
                                                      ("toy/3", "error_rate")]
    assert ongoing_events(engine, source="jobs") == []


def test_events_are_stored_listed_and_filtered(ws):
    check_store(ws.engine)




@pytest.mark.postgres
def test_events_in_postgresql_and_the_migration_both_ways(pg_database: str) -> None:
    engine = create_database(pg_database)
    try:
        check_store(engine)
        check_migration(engine)
    finally:
        engine.dispose()


def check_migration(engine) -> None:  # type: ignore[no-untyped-def]
    command.downgrade(_alembic_config(engine), "0004")
    assert not inspect(engine).has_table("events")
    assert inspect(engine).has_table("streams")  # the tables before it are kept
    command.upgrade(_alembic_config(engine), "head")
    assert inspect(engine).has_table("events")
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == \
            batchscore.state.SCHEMA_HEAD
    indexes = {i["name"] for i in inspect(engine).get_indexes("events")}
    assert {"ix_events_created", "ix_events_subject"} <= indexes
    record_events(engine, [ev()])
    assert len(list_events(engine)) == 1


def test_migration_0005_on_sqlite_from_a_0004_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = create_engine(url)
    command.upgrade(_alembic_config(engine), "0004")  # a workspace of the previous release
    assert not inspect(engine).has_table("events")
    engine.dispose()
    engine = create_database(url)  # as opening the workspace does: upgraded to head
    try:
        check_migration(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize(("fields", "message"), [
    ({"severity": "fatal"}, "event severity must be one of critical, warning, info, got 'fatal'"),
    ({"state": "open"}, "event state must be one of raised, resolved, notice, got 'open'"),
    ({"kind": ""}, "event kind must be 1-32 characters, got ''"),
    ({"subject": "x" * 301}, "event subject must be 1-300 characters"),
    ({"message": ""}, "event message must be a non-empty string, got ''"),
    ({"details": {"p95": float("nan")}}, "event details must be JSON (finite numbers"),
    ({"details": {"at": object()}}, "event details must be JSON"),
    ({"details": [1]}, "event details must be a JSON object, got list"),
    ({"created_at": float("inf")}, "event created_at must be UNIX seconds, got inf"),
])
def test_bad_events_are_refused_before_anything_is_written(ws, fields, message):
    base = {"source": "serving", "kind": "latency", "severity": "warning", "state": "raised",
            "subject": "toy/3", "message": "slow"}
    with pytest.raises(SpecError) as caught:
        Event(**{**base, **fields})  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert list_events(ws.engine) == []


def test_since_takes_unix_seconds_or_iso_8601():
    assert parse_since(None) is None and parse_since("") is None
    assert parse_since("1700000000.5") == 1700000000.5 and parse_since(12) == 12.0
    assert parse_since("2023-11-14T22:13:20Z") == T0
    assert parse_since("2023-11-14T22:13:20") == T0  # no zone: UTC
    assert parse_since("2023-11-14T23:13:20+01:00") == T0
    with pytest.raises(InputError, match="since must be UNIX seconds or an ISO 8601 time such "
                       "as 2024-05-01T12:00:00Z, got 'yesterday'"):
        parse_since("yesterday")
    with pytest.raises(InputError, match="since must be a finite number of UNIX seconds"):
        parse_since("nan")


def test_list_events_refuses_a_bad_limit(ws):
    for bad in (0, 1001, True, 2.5):
        with pytest.raises(InputError, match="limit must be an integer from 1 to 1000"):
            list_events(ws.engine, limit=bad)  # type: ignore[arg-type]


def test_the_writer_writes_in_the_background_and_flushes_on_close(ws):
    writer = EventWriter(ws.engine)
    assert writer.put(ev(at=T0)) and writer.put(ev("error_rate", at=T0 + 1))
    assert writer.flush(10)
    assert [e.kind for e in list_events(ws.engine)] == ["error_rate", "latency"]
    assert writer.put(ev("latency", "resolved", at=T0 + 2))
    writer.close()
    assert writer.written == 3 and writer.dropped == 0
    assert ongoing_events(ws.engine)[0].kind == "error_rate"
    assert not writer.put(ev(at=T0 + 3)) and writer.dropped == 1  # closed: dropped, counted
    writer.close()  # twice is fine


def test_a_failing_database_drops_events_and_never_blocks_the_caller(tmp_path, caplog,
                                                                    monkeypatch):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = create_database(url)
    with engine.begin() as conn:
        conn.execute(text("drop table events"))  # every write fails
    inside, let_go = threading.Event(), threading.Event()

    def held(engine: Engine, batch: list[Event]) -> list[Event]:  # the writer waits here
        inside.set()
        let_go.wait()
        return record_events(engine, batch)

    monkeypatch.setattr(batchscore.state.events, "record_events", held)
    writer = EventWriter(engine, attempts=2, retry_seconds=0.01, max_queue=3)
    assert writer.put(ev(at=T0))
    assert inside.wait(60)  # the writer is held inside its first write
    accepted: list[bool] = []
    caller = threading.Thread(target=lambda: accepted.extend(
        writer.put(ev(at=T0 + i)) for i in range(1, 50)))
    caller.start()
    caller.join(60)  # a safety net: put() only queues, it never waits for the writer
    assert not caller.is_alive(), "put() waited for the database"
    assert accepted == [True] * 3 + [False] * 46  # a full queue refuses at once
    let_go.set()
    assert writer.flush(20)
    assert writer.written == 0 and writer.dropped == 50
    assert "no such table: events" in (writer.last_error or "")
    assert "dropped" in caplog.text and "could not be written to the state database" in (
        caplog.text)
    writer.close()
    engine.dispose()


# --- the REST API ----------------------------------------------------------------------------


def test_get_events_with_filters_and_the_ongoing_flag(ws, client_for, tokens):
    history(ws.engine)
    client = client_for(background=False, auth="always")
    assert client.get("/api/v1/events").status_code == 401
    viewer = tokens["viewer"]
    listed = client.get("/api/v1/events", headers=viewer)
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    assert [(r["subject"], r["kind"], r["state"], r["ongoing"]) for r in rows] == [
        ("job-1", "finished", "notice", False),
        ("other/1", "latency", "raised", True),
        ("toy/3", "latency", "resolved", False),
        ("toy/3", "error_rate", "raised", True),
        ("toy/3", "latency", "raised", False),  # resolved since
    ]
    assert rows[-1]["details"] == {"p95": 0.4} and rows[-1]["message"] == "latency raised"
    assert set(rows[0]) == {"id", "created_at", "source", "kind", "severity", "state",
                            "subject", "message", "details", "ongoing"}

    def kinds(query: str) -> list[str]:
        response = client.get(f"/api/v1/events?{query}", headers=viewer)
        assert response.status_code == 200, response.text
        return [r["kind"] for r in response.json()]

    assert kinds("kind=error_rate") == ["error_rate"]
    assert kinds("source=jobs") == ["finished"]
    assert kinds("subject=other/1") == ["latency"]
    assert kinds("since=2023-11-14T22:13:40Z") == ["finished", "latency", "latency"]
    assert kinds(f"since={T0 + 35}&limit=5") == ["finished"]
    assert kinds("limit=2") == ["finished", "latency"]
    ongoing = client.get("/api/v1/events/ongoing", headers=viewer).json()
    assert [(r["subject"], r["kind"]) for r in ongoing] == [("other/1", "latency"),
                                                            ("toy/3", "error_rate")]
    assert client.get("/api/v1/events/ongoing?source=jobs", headers=viewer).json() == []


@pytest.mark.parametrize(("query", "status", "detail"), [
    ("since=yesterday", 400, "since must be UNIX seconds or an ISO 8601 time"),
    ("limit=0", 422, "query.limit: Input should be greater than or equal to 1"),
    ("limit=5000", 422, "query.limit: Input should be less than or equal to 1000"),
    ("limit=many", 422, "query.limit: Input should be a valid integer"),
    (f"kind={'k' * 40}", 422, "query.kind: String should have at most 32 characters"),
])
def test_get_events_refuses_bad_queries(client_for, query, status, detail):
    client = client_for(background=False, auth="off")
    response = client.get(f"/api/v1/events?{query}")
    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_events_are_in_the_openapi_document(client_for):
    spec = client_for(background=False).get("/api/v1/openapi.json").json()
    assert {"/api/v1/events", "/api/v1/events/ongoing"} <= set(spec["paths"])
    names = {p["name"] for p in spec["paths"]["/api/v1/events"]["get"]["parameters"]}
    assert names == {"since", "kind", "source", "subject", "limit"}
