"""Every error is `{error, detail}` with `detail` a sentence; the OpenAPI document is clean."""

from __future__ import annotations

import warnings
from collections import Counter

from tests.api.conftest import Api


def _is_sentence(detail: object) -> bool:
    return isinstance(detail, str) and len(detail.split()) >= 3


async def test_a_422_says_a_sentence_and_lists_every_problem(api: Api) -> None:
    chat = api.network.chat_jids()[0]
    got = await api.client.get(api.url(f"/chats/{chat}/messages"), params={"limit": 0})
    assert got.status_code == 422
    body = got.json()
    assert body["error"] == "invalid_request"
    assert body["detail"].startswith("query parameter 'limit': ")
    assert body["detail"].endswith(".") and _is_sentence(body["detail"])
    assert body["errors"] == [{"loc": ["query", "limit"], "msg": body["errors"][0]["msg"]}]

    two = await api.client.get(
        api.url(f"/chats/{chat}/messages"), params={"limit": "x", "before": "y" * 5}
    )
    body = two.json()
    assert two.status_code in (400, 422)
    assert _is_sentence(body["detail"]), body


async def test_every_error_status_has_a_sentence(api: Api) -> None:
    cases = [
        ("GET", "/api/sessions/ghost/chats", 404),
        ("GET", "/api/nowhere", 404),
        ("DELETE", "/api/sessions/default/chats", 405),
        ("GET", "/api/sessions/default/chats/not a jid", 400),
        ("GET", "/media/avatars/default/nothing.jpg", 404),
    ]
    for method, path, status in cases:
        got = await api.client.request(method, path)
        assert got.status_code == status, (path, got.text)
        body = got.json()
        assert set(body) == {"error", "detail"}, body
        assert _is_sentence(body["detail"]), (path, body)
    unauthorized = await api.client.get("/api/sessions", headers={"X-Api-Key": "wrong"})
    assert unauthorized.status_code == 401 and _is_sentence(unauthorized.json()["detail"])


async def test_the_openapi_document_warns_nothing_and_ids_are_unique(api: Api) -> None:
    api.app.openapi_schema = None  # built afresh here, not taken from a cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schema = api.app.openapi()
    ids = Counter(
        operation["operationId"]
        for methods in schema["paths"].values()
        for operation in methods.values()
    )
    assert ids and max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]
    assert {"avatar_file", "avatar_file_head"} <= set(ids)
    error = schema["components"]["schemas"]["ErrorBody"]
    assert error["properties"]["detail"]["type"] == "string"
