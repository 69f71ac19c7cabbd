"""Ids out of any database's range are bad requests, not server errors.

SQLite refuses Python integers of 2**63 and more with an OverflowError (a 500, and
the connection reset); PostgreSQL with a DataError. Ids are bounded in the schemas.
"""

from __future__ import annotations

import pytest

from .conftest import Api

TOO_BIG = [2**63, 2**64 + 1, 10**30]
BIGINT = 2**63 - 1  # job ids
INTEGER = 2**31 - 1  # endpoint ids (32 bits on PostgreSQL)
NOT_IDS = [0, -1, -(2**63) - 1]


def _is_a_bad_request(status: int, body: dict[str, object]) -> bool:
    return status in (400, 422) and body["error"] in ("bad_request", "invalid_request")


@pytest.mark.parametrize("value", TOO_BIG + NOT_IDS)
async def test_ids_in_paths_are_bounded(api: Api, value: int) -> None:
    hooks = api.url("/webhooks")
    for method, path in [
        ("GET", f"{hooks}/{value}"),
        ("DELETE", f"{hooks}/{value}"),
        ("POST", f"{hooks}/{value}/ping"),
        ("POST", f"/api/queues/jobs/{value}/retry"),
    ]:
        r = await api.client.request(method, path)
        assert _is_a_bad_request(r.status_code, r.json()), (method, path, r.text)
        assert "less than or equal" in r.text or "greater than" in r.text, r.text


@pytest.mark.parametrize("value", TOO_BIG + NOT_IDS)
async def test_ids_in_queries_and_bodies_are_bounded(api: Api, value: int) -> None:
    r = await api.client.get(api.url("/webhooks/deliveries"), params={"endpoint": value})
    assert _is_a_bad_request(r.status_code, r.json()), r.text
    r = await api.client.post(api.url("/webhooks/deliveries/retry"), json={"ids": [1, value]})
    assert _is_a_bad_request(r.status_code, r.json()), r.text


async def test_the_largest_ids_are_simply_not_found(api: Api) -> None:
    r = await api.client.get(api.url(f"/webhooks/{INTEGER}"))
    assert r.status_code == 404, r.text
    r = await api.client.get(api.url(f"/webhooks/{INTEGER + 1}"))
    assert r.status_code == 422, r.text
    r = await api.client.post(f"/api/queues/jobs/{BIGINT}/retry")
    assert r.status_code == 404, r.text
    r = await api.client.post(api.url("/webhooks/deliveries/retry"), json={"ids": [BIGINT]})
    assert r.status_code == 404, r.text
    r = await api.client.get(api.url("/webhooks/deliveries"), params={"endpoint": INTEGER})
    assert r.status_code == 200, r.text
