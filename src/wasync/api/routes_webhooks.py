"""Webhook endpoints of a session, their dead letters, and manual retries.

GET    /api/sessions/{session}/webhooks
POST   /api/sessions/{session}/webhooks                 (201; the secret, once)
GET    /api/sessions/{session}/webhooks/{id}
DELETE /api/sessions/{session}/webhooks/{id}
POST   /api/sessions/{session}/webhooks/{id}/ping       (a signed test event)
GET    /api/sessions/{session}/webhooks/deliveries      (?state=failed: dead letters)
POST   /api/sessions/{session}/webhooks/deliveries/retry  ({ids} or every dead letter)
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_runtime
from wasync.api.errors import Conflict, NotFound
from wasync.delivery import admin, delivery_of
from wasync.delivery import endpoints as E
from wasync.delivery.envelope import Event
from wasync.delivery.ssrf import Guard, parse_networks
from wasync.delivery.topics import EVENT_TYPES, PING
from wasync.delivery.worker import Delivery
from wasync.runtime import Runtime

router = APIRouter(
    prefix="/api/sessions/{session}/webhooks",
    tags=["webhooks"],
    dependencies=[Authenticated],
    responses=S.error_responses(400, 401, 404, 409, 422),
)
RuntimeDep = Depends(get_runtime)
EndpointId = Annotated[int, Path(**S.id_bounds("The endpoint's id.", small=True))]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class NewEndpoint(_Model):
    url: str = Field(
        description="Receiver URL; Discord webhook URLs are detected; nats://, amqp:// and "
        "redis:// URLs make broker endpoints (README: Event streams)."
    )
    events: list[str] = Field(
        default=["*"], description=f"Event filter: any of {', '.join(EVENT_TYPES)}, or '*'."
    )
    kind: str | None = Field(
        default=None,
        description="'webhook' (signed JSON), 'discord', 'nats', 'rabbitmq' or 'redis'; "
        "default: from the URL.",
    )
    secret: str | None = Field(
        default=None, description="HMAC secret (16+ characters); default: generated."
    )
    description: str | None = None


class RetryRequest(_Model):
    ids: list[S.RowId] | None = Field(
        default=None, description="Delivery (job) ids; omitted: every dead letter of the session."
    )


class EndpointOut(_Model):
    id: int
    session: str
    url: str = Field(description="Tokens in the URL are hidden, except in the answer to add.")
    kind: str = Field(description="'webhook' or 'discord'.")
    events: list[str]
    description: str | None
    source: str = Field(description="'api' (API or CLI) or 'file' (WASYNC_WEBHOOKS_FILE).")
    created_at: int
    secret: str | None = Field(
        default=None, description="The HMAC secret: only in the answer to add, once."
    )


class EndpointList(_Model):
    items: list[EndpointOut]


class DeliveryOut(_Model):
    id: int
    kind: str
    endpoint: int | None
    event: str | None
    event_id: str | None
    state: str = Field(description="queued, running, done or failed (a dead letter).")
    attempts: int
    max_attempts: int
    last_error: str | None
    run_at: float
    updated_at: float


class StreamOut(_Model):
    endpoint: int
    kind: str = Field(description="nats, rabbitmq or redis.")
    waiting: int = Field(description="Events recorded for the broker and not yet acknowledged.")
    published: int = Field(description="How many of the endpoint's events are out, in all.")
    oldest_waiting: float | None = Field(
        description="The timestamp of the oldest event waiting (null: none waits)."
    )
    pump: str | None = Field(
        description="queued or running: the job publishing the log; null when it is empty."
    )
    next_try_at: float | None = Field(description="When a queued pump runs next.")
    last_error: str | None = Field(
        description="The pump's last failure (a broker away or refusing): kept until the log "
        "is empty again."
    )


class DeliveryList(_Model):
    counts: dict[str, int] = Field(
        description="The session's deliveries by state; events waiting in broker endpoints' "
        "logs count as queued."
    )
    items: list[DeliveryOut]
    streams: list[StreamOut] = Field(
        description="Broker endpoints publish from a log rather than a job per event: where "
        "each log stands."
    )


class RetriedOut(_Model):
    requeued: int
    not_found: list[int] = Field(description="Ids that are not dead letters of the session.")


class RemovedOut(_Model):
    removed: int
    cancelled_deliveries: int


class PingOut(_Model):
    queued: str = Field(description="The test event's id.")


def _delivery(runtime: Runtime) -> Delivery:
    installed = delivery_of(runtime)
    if installed is not None:
        return installed[0]
    # Not installed in this process (API-only tools): configure, but nothing delivers here.
    return Delivery(runtime.settings, runtime.db)


async def _changed(runtime: Runtime) -> None:
    installed = delivery_of(runtime)
    if installed is not None:
        await installed[1].endpoints_changed()


def _guard(runtime: Runtime) -> Guard:
    installed = delivery_of(runtime)
    if installed is not None:
        return installed[0].guard
    return Guard(parse_networks(runtime.settings.webhook_allowed_networks))


@router.get(
    "",
    summary="List the session's webhook endpoints",
    response_model=EndpointList,
    response_model_exclude_unset=True,  # no "secret": it is shown once, when added
)
async def list_endpoints(session: str, runtime: Runtime = RuntimeDep) -> dict[str, Any]:
    found = await asyncio.to_thread(admin.list_endpoints, runtime.db, session)
    return {"items": [e.public() for e in found]}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a webhook endpoint",
    response_model=EndpointOut,
    response_model_exclude_unset=True,
)
async def add_endpoint(
    session: str, body: NewEndpoint, runtime: Runtime = RuntimeDep
) -> dict[str, Any]:
    """The answer carries the secret: it is not shown again."""
    try:
        endpoint = await admin.add_endpoint(
            runtime.db,
            _guard(runtime),
            session,
            body.url,
            body.events,
            kind=body.kind,
            secret=body.secret,
            description=body.description,
        )
    except E.DuplicateEndpoint as exc:
        raise Conflict(str(exc)) from None
    await _changed(runtime)
    return endpoint.public(with_secret=True)


@router.get(
    "/deliveries",
    summary="Deliveries of the session (default: dead letters)",
    response_model=DeliveryList,
)
async def list_deliveries(
    session: str,
    state: str = Query("failed", description="failed, queued, running, done or all"),
    endpoint: int | None = Query(
        None, **S.id_bounds("Only this endpoint's deliveries.", small=True)
    ),
    limit: int = Query(50, ge=1, le=admin.MAX_LIST),
    runtime: Runtime = RuntimeDep,
) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        return {
            "counts": admin.delivery_counts(runtime.db, session),
            "items": admin.list_deliveries(
                runtime.db,
                session,
                state=None if state == "all" else state,
                endpoint_id=endpoint,
                limit=limit,
            ),
            "streams": admin.stream_standing(runtime.db, session, endpoint_id=endpoint),
        }

    return await asyncio.to_thread(read)


@router.post("/deliveries/retry", summary="Queue dead letters again", response_model=RetriedOut)
async def retry_deliveries(
    session: str, body: RetryRequest | None = None, runtime: Runtime = RuntimeDep
) -> dict[str, Any]:
    ids = body.ids if body is not None else None
    done, missing = await asyncio.to_thread(admin.retry_deliveries, runtime.db, session, ids)
    if ids is not None and missing and done == 0:
        raise NotFound(f"no dead-lettered delivery {', '.join(map(str, missing))} in {session!r}")
    await _changed(runtime)
    return {"requeued": done, "notFound": missing}


@router.get(
    "/{endpoint_id}",
    summary="One webhook endpoint",
    response_model=EndpointOut,
    response_model_exclude_unset=True,
)
async def get_endpoint(
    session: str, endpoint_id: EndpointId, runtime: Runtime = RuntimeDep
) -> dict[str, Any]:
    def read() -> E.Endpoint:
        with runtime.db.read() as conn:
            return admin.find_endpoint(conn, session, endpoint_id)

    try:
        return (await asyncio.to_thread(read)).public()
    except E.EndpointNotFound as exc:
        raise NotFound(str(exc)) from None


@router.delete(
    "/{endpoint_id}",
    summary="Remove an endpoint and its queued deliveries",
    response_model=RemovedOut,
)
async def remove_endpoint(
    session: str, endpoint_id: EndpointId, runtime: Runtime = RuntimeDep
) -> dict[str, Any]:
    try:
        cancelled = await asyncio.to_thread(admin.remove_endpoint, runtime.db, session, endpoint_id)
    except E.EndpointNotFound as exc:
        raise NotFound(str(exc)) from None
    except E.FileManaged as exc:
        raise Conflict(str(exc)) from None
    await _changed(runtime)
    return {"removed": endpoint_id, "cancelledDeliveries": cancelled}


@router.post(
    "/{endpoint_id}/ping",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a signed test event to one endpoint",
    response_model=PingOut,
)
async def ping_endpoint(
    session: str, endpoint_id: EndpointId, runtime: Runtime = RuntimeDep
) -> dict[str, Any]:
    def read() -> E.Endpoint:
        with runtime.db.read() as conn:
            return admin.find_endpoint(conn, session, endpoint_id)

    try:
        await asyncio.to_thread(read)
    except E.EndpointNotFound as exc:
        raise NotFound(str(exc)) from None
    event = Event.occurrence(session, PING, {"message": "test delivery from wasync"})
    delivery = _delivery(runtime)
    await asyncio.to_thread(delivery.enqueue, session, [event], endpoint_id=endpoint_id)
    await _changed(runtime)
    return {"queued": event.id}
