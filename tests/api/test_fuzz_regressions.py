"""What fuzzing the API found (test_fuzz.py), kept as explicit cases.

Each case is sent to the same in-process server and validated by the same checks:
no 500, and status, content type and body as the OpenAPI schema documents them.
"""

from __future__ import annotations

from typing import Any

import pytest

from .fuzzing import Served, served

__all__ = ["served"]  # the fixture

AVATAR_FILE = "/media/avatars/{session}/{file}"
MEDIA = "/api/sessions/{session}/chats/{jid}/messages/{message_id}/media"


def _case(served: Served, path: str, method: str, **parts: Any) -> Any:
    return served.schema[path][method].Case(**parts)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_missing_avatar_is_a_documented_404(served: Served, method: str) -> None:
    # Found: 404 was not among the documented statuses (200, 422).
    case = _case(served, AVATAR_FILE, method, path_parameters={"session": "0", "file": "0"})
    assert served.check(case).status_code == 404


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_stored_avatar_is_a_documented_jpeg(served: Served, method: str) -> None:
    # Found: served as image/jpeg, documented as application/json.
    names = {"session": served.known["session"], "file": served.known["file"]}
    response = served.check(_case(served, AVATAR_FILE, method, path_parameters=names))
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    etag = response.headers["etag"]
    again = _case(served, AVATAR_FILE, method, path_parameters=names)
    again.headers = {"If-None-Match": etag}
    assert served.check(again).status_code == 304


def test_message_media_is_served_with_its_own_documented_type(served: Served) -> None:
    # Found: served with the media's mimetype, documented as application/octet-stream.
    known = served.known
    case = _case(
        served,
        MEDIA,
        "GET",
        path_parameters={k: known[k] for k in ("session", "jid", "message_id")},
        query={"sender": known["sender"]},
    )
    response = served.check(case)
    assert response.status_code == 200
    assert response.headers["content-type"] != "application/octet-stream"


def test_metrics_without_the_key_is_a_documented_401(served: Served) -> None:
    # Found: 401 was not documented on /metrics (whose schema said only 200).
    case = _case(served, "/metrics", "GET", headers={"X-Api-Key": "wrong-key-wrong-key"})
    assert served.check(case, key=None).status_code == 401


@pytest.mark.parametrize(
    ("path", "method", "names"),
    [
        ("/api/queues/jobs/{job_id}/retry", "POST", {"job_id": 2**63}),
        ("/api/sessions/{session}/webhooks/{endpoint_id}", "GET", {"endpoint_id": 2**63}),
        ("/api/sessions/{session}/webhooks/{endpoint_id}", "DELETE", {"endpoint_id": 2**31}),
        ("/api/sessions/{session}/webhooks/{endpoint_id}/ping", "POST", {"endpoint_id": -1}),
    ],
)
def test_ids_beyond_the_tables_are_documented_422s(
    served: Served, path: str, method: str, names: dict[str, int]
) -> None:
    # Found: SQLite's OverflowError as a 500 (Python int too large to convert).
    parameters = {"session": served.known["session"], **names}
    assert served.check(_case(served, path, method, path_parameters=parameters)).status_code == 422


def test_the_answers_of_the_checks_before_the_routes_are_documented(served: Served) -> None:
    # A body over the cap (413) and a form post from a foreign page (403) are
    # answered before any route runs: documented on every operation they apply to.
    big = _case(
        served,
        "/api/sessions",
        "POST",
        body={"name": "x" * (2**20 + 1), "engine": "simulator"},
        media_type="application/json",
    )
    assert served.check(big).status_code == 413
    foreign = _case(
        served,
        "/api/sessions/{session}/logout",
        "POST",
        path_parameters={"session": served.known["session"]},
        headers={"Origin": "http://evil.example"},
    )
    assert served.check(foreign).status_code == 403
