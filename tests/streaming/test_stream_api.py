"""The streams REST API: HTTP ingest (a bad batch is refused whole, each bad event named,
nothing written), roles, counters, and the service's own consumer landing what was posted."""

from __future__ import annotations

import time

import pytest
import redis
from sqlalchemy import update
from stream_helpers import T0, TestClient, events, landed_ids

from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.state.tables import streams
from batchscore.streaming import get_stream

FUTURE = time.time() + 10 * 86400


@pytest.fixture
def client(ws):
    with TestClient(create_app(ws, ServiceConfig(background=False, auth="always")),
                    base_url="http://localhost") as c:
        yield c


@pytest.fixture
def headers(ws):
    return {role: {"Authorization": f"Bearer {create_token(ws.engine, role, role)[1]}"}
            for role in ("viewer", "operator", "admin")}


def xlen(redis_url: str, key: str) -> int:
    return int(redis.Redis.from_url(redis_url).xlen(key))


def test_a_good_batch_is_appended_and_answered_202_with_its_ids(ws, make_stream, client,
                                                                headers, redis_url):
    stream = make_stream("s")
    r = client.post("/api/v1/streams/s/events", headers=headers["operator"],
                    json={"events": [*events([0, 1]), {"Device": 7, "Sensor": 2,
                                                       "TS": "2018-08-28 23:00:05",
                                                       "Value": "1.5"}]})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["stream"] == "s" and body["accepted"] == 3 and len(body["ids"]) == 3
    entries = redis.Redis.from_url(redis_url, decode_responses=True).xrange(stream.redis_key)
    assert [i for i, _ in entries] == body["ids"]
    assert entries[2][1] == {"device": "7", "sensor": "2", "timestamp": repr(T0 + 5),
                             "value": "1.5"}


BAD = [
    ({"sensor": "1", "timestamp": T0, "value": 1}, "device", "is missing"),
    ({"device": "1", "sensor": "1", "timestamp": T0}, "value", "is missing"),
    ({"device": "1", "sensor": "1", "timestamp": T0, "value": "high"}, "value",
     "'high' is not a number"),
    ({"device": "1", "sensor": "1", "timestamp": T0, "value": None}, "value", "is missing"),
    ({"device": "1", "sensor": "1", "timestamp": "28/08/2018", "value": 1}, "timestamp",
     "neither ISO 8601 nor UNIX seconds"),
    ({"device": "1", "sensor": "1", "timestamp": FUTURE, "value": 1}, "timestamp",
     "in the future"),
    ("1,1,2018-08-28,3", "*", "must be an object"),
]


@pytest.mark.parametrize(("event", "field", "problem"), BAD)
def test_a_batch_with_a_bad_event_is_refused_whole(ws, make_stream, client, headers, redis_url,
                                                   event, field, problem):
    stream = make_stream("s")
    batch = [*events([0, 1]), event, *events([2])]
    r = client.post("/api/v1/streams/s/events", headers=headers["operator"],
                    json={"events": batch})
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert (error["index"], error["field"]) == (2, field) and problem in error["problem"]
    assert "1 of 4 events are bad, nothing was written" in r.json()["detail"]
    assert xlen(redis_url, stream.redis_key) == 0


def test_every_bad_event_of_a_batch_is_named(ws, make_stream, client, headers):
    make_stream("s")
    batch = [event for event, _, _ in BAD]
    r = client.post("/api/v1/streams/s/events", headers=headers["operator"],
                    json={"events": batch})
    assert r.status_code == 422
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [
        (i, field) for i, (_, field, _) in enumerate(BAD)]


def test_malformed_requests(ws, make_stream, client, headers):
    make_stream("s")
    post = client.post
    op = headers["operator"]
    r = post("/api/v1/streams/s/events", headers=op, json={"events": []})
    assert r.status_code == 400 and "holds no events" in r.json()["detail"]
    r = post("/api/v1/streams/s/events", headers=op, json=events([0]))  # a bare list
    assert r.status_code == 422
    r = post("/api/v1/streams/s/events", headers=op, json={"events": events([0]), "x": 1})
    assert r.status_code == 422
    r = post("/api/v1/streams/s/events", headers=op, content=b"{not json")
    assert r.status_code == 422
    r = post("/api/v1/streams/nope/events", headers=op, json={"events": events([0])})
    assert r.status_code == 404 and "no stream named 'nope'" in r.json()["detail"]
    r = post("/api/v1/streams/s/events", headers=op,
             json={"events": events([0]) * 10_001})
    assert r.status_code in (413, 422)  # over the body limit or the batch limit


def test_roles(ws, make_stream, client, headers):
    make_stream("s")
    batch = {"events": events([0])}
    assert client.post("/api/v1/streams/s/events", json=batch).status_code == 401
    assert client.post("/api/v1/streams/s/events", json=batch,
                       headers=headers["viewer"]).status_code == 403
    assert client.get("/api/v1/streams", headers=headers["viewer"]).status_code == 200
    assert client.post("/api/v1/streams", json={"name": "t"},
                       headers=headers["operator"]).status_code == 403
    assert client.delete("/api/v1/streams/s", headers=headers["operator"]).status_code == 403


def test_redis_that_does_not_answer_is_503(ws, make_stream, client, headers):
    make_stream("s")
    with ws.engine.begin() as conn:
        conn.execute(update(streams).values(redis_url="redis://:secret@127.0.0.1:1/0"))
    r = client.post("/api/v1/streams/s/events", headers=headers["operator"],
                    json={"events": events([0])})
    assert r.status_code == 503 and "cannot reach Redis at redis://***@127.0.0.1:1/0" in r.text
    shown = client.get("/api/v1/streams/s", headers=headers["viewer"]).json()
    assert shown["redis_url"] == "redis://***@127.0.0.1:1/0" and "redis_error" in shown
    assert "secret" not in str(shown)


def test_create_show_list_delete(ws, client, headers, redis_url):
    admin = headers["admin"]
    r = client.post("/api/v1/streams", headers=admin, json={
        "name": "s", "window": "5min", "aggregates": ["max"], "redis_url": redis_url,
        "redis_key": "test:api-crud"})
    assert r.status_code == 201, r.text
    assert (r.json()["window_s"], r.json()["aggregates"]) == (300, ["count", "max"])
    r = client.post("/api/v1/streams", headers=admin, json={"name": "s", "redis_url": redis_url})
    assert r.status_code == 400 and "exists already" in r.json()["detail"]
    r = client.post("/api/v1/streams", headers=admin, json={"name": "t", "window": "7s",
                                                            "redis_url": redis_url})
    assert r.status_code == 400 and "does not divide a hour" in r.json()["detail"]
    shown = client.get("/api/v1/streams/s", headers=headers["viewer"]).json()
    assert (shown["events_received"], shown["pending"], shown["length"]) == (0, 0, 0)
    assert "lease_token" not in shown
    assert [s["name"] for s in client.get("/api/v1/streams", headers=admin).json()] == ["s"]
    assert client.get("/api/v1/streams/nope", headers=admin).status_code == 404
    assert client.delete("/api/v1/streams/s", headers=admin).status_code == 200
    assert client.get("/api/v1/streams", headers=admin).json() == []


def test_the_service_consumes_what_is_posted(ws, make_stream, headers):
    make_stream("s", window="10s", lateness="0s")
    config = ServiceConfig(auth="always", scan_interval=0.2)
    with TestClient(create_app(ws, config)) as client:
        ids = client.post("/api/v1/streams/s/events", headers=headers["operator"],
                          json={"events": events([0, 5, 12, 25])}).json()["ids"]
        deadline = time.monotonic() + 60
        while get_stream(ws, "s").windows_landed < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        shown = client.get("/api/v1/streams/s", headers=headers["viewer"]).json()
        assert (shown["windows_landed"], shown["events_landed"]) == (2, 3)
        assert shown["consumer"]["state"] == "consuming"
        assert shown["pending"] == 1  # 25 is in the window still open
    assert get_stream(ws, "s").lease_owner is None  # stopped with the service
    assert sorted(landed_ids(ws, "s")) == sorted(ids[:3])
