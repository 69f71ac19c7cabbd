"""A message's media, downloaded on demand through the engine and cached on disk."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from wasync.api import byte_ranges, reads
from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_control
from wasync.api.errors import Conflict, NotFound
from wasync.api.media_cache import MediaCache, is_inline
from wasync.api.routes_chats import chat_jid_of, session_id_of
from wasync.api.session_control import SessionControl
from wasync.domain.jid import normalize_jid
from wasync.domain.models import MediaInfo
from wasync.engines.base import CapabilityMissing, MediaGone
from wasync.errors import DomainError
from wasync.store.identities import canonical

router = APIRouter(prefix="/api/sessions/{session}", tags=["media"], dependencies=[Authenticated])
Control = Depends(get_control)
ERRORS = S.error_responses(400, 401, 404, 409, 410, 422, 501, 502, 503)


def _media_info(row: dict[str, Any]) -> MediaInfo:
    return MediaInfo(
        mimetype=row["media_mimetype"],
        size=row["media_size"],
        sha256=row["media_sha256"],
        enc_sha256=row["media_enc_sha256"],
        media_key=row["media_key"],
        direct_path=row["media_direct_path"],
        url=row["media_url"],
        filename=row["media_filename"],
    )


def _find(
    control: SessionControl, session: str, chat: str, message_id: str, sender: str | None
) -> tuple[int, dict[str, Any]]:
    with control.runtime.db.read() as conn:
        sid = session_id_of(conn, session)
        # A person's chat and messages by LID, phone JID or number alike.
        chat = canonical(conn, sid, chat)
        sender = canonical(conn, sid, sender) if sender else None
        rows = reads.find_messages(conn, sid, chat, message_id, sender)
    if not rows:
        raise NotFound(f"no message {message_id!r} in chat {chat!r}")
    if len(rows) > 1:
        raise DomainError(
            f"message id {message_id!r} is used by several senders in {chat!r}: "
            "pass ?sender=<jid> to choose one"
        )
    return sid, rows[0]


@router.get(
    "/chats/{jid}/messages/{message_id}/media",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"*/*": {}},
            "description": "The media, served with its own mimetype (image/jpeg, audio/ogg, ...).",
        },
        206: {"description": "The part a `Range: bytes=...` header asked for."},
        416: {"description": "The range asked for starts past the end of the media."},
        **ERRORS,
    },
)
async def get_media(
    request: Request,
    session: str,
    jid: str,
    message_id: str,
    sender: str | None = Query(None, description="Sender JID, when the id is ambiguous."),
    control: SessionControl = Control,
) -> Response:
    """The media of a message, with its mimetype. Downloaded from WhatsApp on first
    request (the session must be running), then served from the cache. 410 when
    WhatsApp no longer has it."""
    chat = chat_jid_of(jid)
    sender_jid = normalize_jid(sender) if sender else None
    sid, row = await asyncio.to_thread(_find, control, session, chat, message_id, sender_jid)
    if row["revoked_at"] is not None:
        raise MediaGone("the message was deleted for everyone; its media is gone")
    if not (row["media_url"] or row["media_direct_path"]):
        raise NotFound(f"message {message_id!r} has no media")
    cache: MediaCache = request.app.state.media_cache
    info = _media_info(row)

    async def download() -> bytes:
        handle = await control.require_running(session)
        if not handle.engine.capabilities.media_download:
            raise CapabilityMissing(f"the {handle.engine_name} engine cannot download media")
        if handle.session_id != sid:
            raise Conflict("the running session does not match the stored one; restart it")
        return await handle.engine.download(info)

    mimetype = row["media_mimetype"] or "application/octet-stream"
    key = cache.key_for(sid, row["chat_jid"], row["sender_jid"], message_id)
    await cache.fetch(key, download, info.sha256, mimetype)
    filename = row["media_filename"] or message_id
    disposition = "inline" if is_inline(mimetype) else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename, safe='')}",
        "X-Content-Type-Options": "nosniff",
        # Media are other people's files: never let one run as a page of ours.
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, max-age=86400",
    }
    path = await asyncio.to_thread(cache.store.local_path, key)
    if path is not None:  # the local store: a file, with ranges and sendfile
        return FileResponse(path, media_type=mimetype, headers=headers)
    # The database store: streamed chunk by chunk, never whole in memory.
    # Size first: a key's bytes never change (checked against the message's SHA-256).
    stored = await asyncio.to_thread(cache.store.stat, key)
    if stored is None:  # removed in between (the session deleted)
        raise NotFound(f"message {message_id!r} has no stored media")
    headers["Accept-Ranges"] = "bytes"
    try:
        wanted = byte_ranges.requested(request.headers.get("range"), stored.size)
    except byte_ranges.Unsatisfiable as exc:
        headers["Content-Range"] = exc.content_range
        return Response(status_code=416, headers=headers)
    start, end = (0, stored.size) if wanted is None else (wanted.start, wanted.end)
    chunks = await asyncio.to_thread(cache.store.stream, key, start=start, end=end)
    if chunks is None:
        raise NotFound(f"message {message_id!r} has no stored media")
    headers["Content-Length"] = str(end - start)
    if wanted is None:
        return StreamingResponse(chunks, media_type=mimetype, headers=headers)
    headers["Content-Range"] = wanted.content_range
    return StreamingResponse(chunks, status_code=206, media_type=mimetype, headers=headers)
