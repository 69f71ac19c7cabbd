"""Start and stop whatsmeow's Go loop for one client without ever blocking our loop.

This does what neonize 0.5.2's `NewAClient.connect()` does, with two differences
that matter when the network is gone:

- `Neonize()` (which blocks while whatsmeow dials, up to a minute against a silent
  network) runs on a daemon thread whose result we await, instead of a task whose
  cancellation calls the Go `Stop` synchronously on the event loop (which then waits
  for that same dial, so `asyncio.run()` cannot finish);
- `Stop` also runs on a daemon thread, with a bounded wait.

It touches neonize internals (the name-mangled QR and login-status callbacks, the
argument order of the exported `Neonize` function); wasync pins neonize==0.5.2 and
the dispatch and no-network tests exercise this path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import threading
from typing import Any

from wasync.engines.base import EngineError
from wasync.engines.neonize import loader


def start(client: Any, proxy_address: str | None) -> asyncio.Future[str]:
    """Run whatsmeow for `client`; the future resolves with its error text ("" = stopped)."""
    binder = loader.module("binder")
    enum = loader.module("enum")
    nlog = loader.module("log")

    loop = asyncio.get_running_loop()
    client.loop = loop
    bind_loop(loop)
    subscribed = bytearray(list(client.event.list_func))
    props = client.device_props.SerializeToString()
    jid = client.jid.SerializeToString() if client.jid else b""
    settings = None
    if proxy_address:
        settings = binder.ProxySettings(proxy_address=proxy_address)._to_c_struct()
    subscriber_buf = (ctypes.c_char * len(subscribed)).from_buffer(subscribed)
    qr_cb = binder.func_string(client._NewAClient__onQr)
    login_cb = binder.func_string(client._NewAClient__onLoginStatus)
    event_cb = binder.func_callback_bytes(client.event.execute)
    log_cb = binder.func_callback_bytes2(nlog.log_whatsmeow)
    # ctypes callbacks die with their Python objects: keep them for the client's life.
    client._connect_refs = (qr_cb, login_cb, event_cb, log_cb, subscriber_buf, subscribed, settings)
    args = (
        client.name.encode(),
        client.uuid,
        jid,
        len(jid),
        int(client.new_device),
        enum.LogLevel.from_logging(nlog.log.level).level,
        qr_cb,
        login_cb,
        event_cb,
        log_cb,
        subscriber_buf,
        len(subscribed),
        props,
        len(props),
        b"",
        0,
        ctypes.byref(settings) if settings is not None else None,
    )
    done: concurrent.futures.Future[str] = concurrent.futures.Future()

    def run() -> None:
        try:
            err = binder.gocode.Neonize(*args)
            done.set_result(err.decode() if err else "")
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=run, name=f"whatsmeow-{client.uuid.decode()}", daemon=True).start()
    return asyncio.wrap_future(done, loop=loop)


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Make `loop` the one neonize dispatches events to.

    neonize keeps a single process-wide loop and never rebinds it: after one
    `asyncio.run()` ends, a later one would get no events at all. A loop that is not
    running is replaced; another running loop is a conflict we refuse rather than
    lose events.
    """
    events = loader.module("events")
    current = events.event_global_loop
    if current is None or current.is_closed() or not current.is_running():
        events.event_global_loop = loop
    elif current is not loop:
        raise EngineError(
            "neonize delivers events to one event loop per process, and another "
            "running loop already has it"
        )


async def stop(client: Any, patience: float) -> bool:
    """Ask whatsmeow to stop `client`; False when it did not answer within `patience` s.

    Stop waits for a dial in progress, so it may outlive us; it runs on a daemon thread
    and is simply not waited for past `patience`.
    """
    binder = loader.module("binder")
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            binder.gocode.Stop(client.uuid)
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=run, name="whatsmeow-stop", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.wrap_future(done), patience)
    except TimeoutError:
        return False
    return True
