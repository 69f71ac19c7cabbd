"""Delivery: signed webhooks and Discord, durable through the jobs table.

`install(runtime)` wires it in: the transaction hook and the outbox listener turn
committed changes into delivery jobs in the same transaction, and the delivery
service sends them with retries. README: Webhooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wasync.delivery.endpoints import DELIVERY_KINDS
from wasync.delivery.worker import Delivery, DeliveryService

if TYPE_CHECKING:
    from wasync.runtime import Runtime


def install(runtime: Runtime) -> Delivery:
    delivery = Delivery(runtime.settings, runtime.db)
    runtime.add_hook(delivery.recorder)
    runtime.outbox.listen(delivery.recorder.on_outbox)
    runtime.add_service(DeliveryService(delivery))

    def stats() -> dict[str, Any]:
        return {
            "endpoints": delivery.endpoints.size,
            "recordingErrors": delivery.recorder.errors,
        }

    for kind in DELIVERY_KINDS:
        runtime.queue_stats[kind] = stats
    return delivery


def delivery_of(runtime: Runtime) -> tuple[Delivery, DeliveryService] | None:
    """The installed delivery feature of a runtime, if any."""
    for service in runtime.services:
        if isinstance(service, DeliveryService):
            return service.delivery, service
    return None


__all__ = ["Delivery", "DeliveryService", "delivery_of", "install"]
