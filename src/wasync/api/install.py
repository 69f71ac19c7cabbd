"""The API's runtime services: session control (pairing, syncs) and the realtime hub.

`install(runtime)` registers them (assemble.py calls it); `api_services(runtime)`
finds them again for the app, installing them if a caller built the runtime by hand.
"""

from __future__ import annotations

from wasync.api.realtime_hub import RealtimeHub
from wasync.api.session_control import SessionControl
from wasync.jobs.depth import QueueDepth, queue_depth
from wasync.runtime import Runtime


def install(runtime: Runtime) -> None:
    api_services(runtime)
    if queue_depth(runtime) is None:
        # The queues dashboard's depth chart (samples every 10 s, kept an hour).
        runtime.add_service(QueueDepth())


def api_services(runtime: Runtime) -> tuple[SessionControl, RealtimeHub]:
    control = next((s for s in runtime.services if isinstance(s, SessionControl)), None)
    hub = next((s for s in runtime.services if isinstance(s, RealtimeHub)), None)
    if hub is None:
        hub = RealtimeHub()
        runtime.add_service(hub)
    if control is None:
        control = SessionControl()
        runtime.add_service(control)
    return control, hub
