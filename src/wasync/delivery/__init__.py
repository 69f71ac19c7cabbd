"""Delivery: signed webhooks, Discord and event streams, durable through the database.

`install(runtime)` wires it in: the transaction hook and the outbox listener turn
committed changes into delivery jobs (broker endpoints: log entries) in the same
transaction, and the delivery service sends them with retries. README: Webhooks,
Event streams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wasync.delivery.endpoints import DELIVERY_KINDS
from wasync.delivery.streams.log import PUMP
from wasync.delivery.worker import Delivery, DeliveryService

if TYPE_CHECKING:
    from wasync.runtime import Runtime


def install(runtime: Runtime) -> Delivery:
    delivery = Delivery(runtime.settings, runtime.db)
    runtime.add_hook(delivery.recorder)
    runtime.outbox.listen(delivery.recorder.on_outbox)

    def stats() -> dict[str, Any]:
        return {
            "endpoints": delivery.endpoints.size,
            "recordingErrors": delivery.recorder.errors,
        }

    service = DeliveryService(delivery)

    def stream_stats() -> dict[str, Any]:
        # Live figures of this process's pumps, and the events waiting in every log
        # (as last read: called on the event loop, so no I/O here).
        pump = service.pump
        return {
            "eventsWaiting": service.events_waiting(),
            "endpoints": delivery.endpoints.size,
            "published": pump.published if pump is not None else 0,
            "deadLettered": pump.dead_lettered if pump is not None else 0,
            "failedPublishes": pump.failed if pump is not None else 0,
        }

    for kind in DELIVERY_KINDS:
        runtime.queue_stats[kind] = stats
    runtime.queue_stats[PUMP] = stream_stats
    runtime.add_service(service)
    return delivery


def delivery_of(runtime: Runtime) -> tuple[Delivery, DeliveryService] | None:
    """The installed delivery feature of a runtime, if any."""
    for service in runtime.services:
        if isinstance(service, DeliveryService):
            return service.delivery, service
    return None


__all__ = ["Delivery", "DeliveryService", "delivery_of", "install"]
