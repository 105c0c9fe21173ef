"""The dashboard's sign-ins in the database, on each backend: a session signs its user in until
it is closed or expires, and the database never holds the cookie's value."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from clusterctl.store import WebSessionStore, make_engine, migrate


def test_a_session_signs_in_until_closed_or_expired(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    sessions = WebSessionStore(engine)
    value, first = sessions.open("alice", timedelta(hours=1))
    found = sessions.find(value)
    assert found is not None and found.user == "alice" and found.csrf == first.csrf
    other, second = sessions.open("alice", timedelta(hours=1))
    assert second.csrf != first.csrf  # each sign-in its own anti-forgery value

    sessions.close(value)
    assert sessions.find(value) is None
    assert sessions.find(other) is not None  # signing out one browser keeps the other

    stale, _ = sessions.open("bob", timedelta(seconds=-1))
    assert sessions.find(stale) is None
    assert sessions.find("made-up") is None
    with engine.connect() as c:
        stored = " ".join(str(v) for row in c.execute(text("SELECT * FROM web_session"))
                          for v in row)
    assert other not in stored and value not in stored
