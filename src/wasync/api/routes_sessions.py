"""Sessions: list, create (pair), get, delete, log out; pairing QR and phone code; sync."""

from __future__ import annotations

import asyncio
import io

import segno
from fastapi import APIRouter, Depends, Query, Response, status

from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_control
from wasync.api.errors import Conflict
from wasync.api.session_control import SessionControl
from wasync.api.shapes import session_out
from wasync.domain.events import SessionStatus
from wasync.store.sessions import SessionRow

router = APIRouter(prefix="/api/sessions", tags=["sessions"], dependencies=[Authenticated])
Control = Depends(get_control)

ERRORS = S.error_responses(400, 401, 404, 409, 422, 503)


def _out(control: SessionControl, row: SessionRow, holders: dict[int, str]) -> S.Session:
    pairing = control.pairings.get(row.name)
    return session_out(
        row,
        control.runtime.sessions.get(row.name),
        node=holders.get(row.id),
        syncing=control.is_syncing(row.name),
        pairing=S.PairingState(
            qr=pairing.qr, phone_code=pairing.phone_code, updated_at=pairing.updated_at
        )
        if pairing is not None
        else None,
        error=control.restore_errors.get(row.name),
    )


async def _one(control: SessionControl, name: str) -> S.Session:
    row = await control.row(name)
    return _out(control, row, await asyncio.to_thread(control.holders))


@router.get("", response_model=S.SessionList, responses=ERRORS)
async def list_sessions(control: SessionControl = Control) -> S.SessionList:
    rows = await control.rows()
    holders = await asyncio.to_thread(control.holders)
    return S.SessionList(items=[_out(control, row, holders) for row in rows])


@router.post("", response_model=S.Session, status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_session(body: S.CreateSession, control: SessionControl = Control) -> S.Session:
    """Start a session. A new one pairs: poll `pairing` (or listen to `session.status`)
    for the QR code, or ask for a phone code. A logged-out session is paired again."""
    await control.create(body.name, body.engine)
    return await _one(control, body.name)


@router.get("/{session}", response_model=S.Session, responses=ERRORS)
async def get_session(session: str, control: SessionControl = Control) -> S.Session:
    return await _one(control, session)


@router.delete("/{session}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_session(session: str, control: SessionControl = Control) -> Response:
    """Log out (if connected), stop, and delete the session and everything mirrored."""
    await control.delete(session)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{session}/logout", response_model=S.Session, responses=ERRORS)
async def logout_session(session: str, control: SessionControl = Control) -> S.Session:
    """Unlink this device from the phone and stop mirroring; the mirror is kept."""
    await control.call(session, "logout")
    return await _one(control, session)


async def _pairing(control: SessionControl, session: str) -> S.PairingState:
    handle = control.runtime.sessions.get(session)
    if handle is not None:
        status = str(handle.engine.status)
    else:  # running on another node: its status events (and codes) reach this one too
        await control.remote(session)
        status = (await control.row(session)).status
    if status != SessionStatus.PAIRING:
        raise Conflict(f"session {session!r} is not pairing (it is {status})")
    pairing = control.pairings.get(session)
    if pairing is None:
        raise Conflict(f"session {session!r} has no pairing code yet; try again in a moment")
    return S.PairingState(
        qr=pairing.qr, phone_code=pairing.phone_code, updated_at=pairing.updated_at
    )


@router.get("/{session}/pairing", response_model=S.PairingState, responses=ERRORS)
async def get_pairing(session: str, control: SessionControl = Control) -> S.PairingState:
    """The current QR string (it rotates: poll, or follow `session.status` events)."""
    return await _pairing(control, session)


@router.get(
    "/{session}/pairing/qr.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **ERRORS},
)
async def get_pairing_qr(
    session: str,
    scale: int = Query(8, ge=1, le=40, description="Pixels per QR module."),
    control: SessionControl = Control,
) -> Response:
    """The current QR code as a PNG: scan it in WhatsApp > Linked devices."""
    pairing = await _pairing(control, session)
    if not pairing.qr:
        raise Conflict(f"session {session!r} has no QR code yet; try again in a moment")
    qr = pairing.qr

    def render() -> bytes:
        out = io.BytesIO()
        segno.make(qr, error="l", micro=False).save(out, kind="png", scale=scale, border=2)
        return out.getvalue()

    png = await asyncio.to_thread(render)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/{session}/pairing/phone", response_model=S.PairCode, responses=ERRORS)
async def pair_with_phone(
    session: str, body: S.PairPhone, control: SessionControl = Control
) -> S.PairCode:
    """Ask for a code to type on the phone instead of scanning the QR code."""
    answer = await control.call(session, "pair_phone", {"phone": body.phone})
    return S.PairCode(code=str(answer["code"]))


@router.post("/{session}/sync-chats", response_model=S.SyncChatsResult, responses=ERRORS)
async def sync_chats(
    session: str,
    limit_per_chat: int = Query(
        100, alias="limitPerChat", ge=0, le=10_000, description="Newest messages per chat."
    ),
    control: SessionControl = Control,
) -> S.SyncChatsResult:
    """Sync every chat and its newest messages; answers when done. Progress goes to
    Socket.IO `sync_chats` events (and `/ws`) of this session while it runs."""
    # Wherever the session runs; one sync at a time per session, cluster-wide. The
    # sync goes on if the client hangs up.
    report = await control.call(
        session, "sync_chats", {"limitPerChat": limit_per_chat}, key="sync", patience=None
    )
    failed = list(report["failedChats"])
    message = "Synchronization completed successfully"
    if failed:
        message = f"Synchronization completed; {len(failed)} of {report['chats']} chats failed"
    return S.SyncChatsResult(
        success=True,
        chats_processed=int(report["chats"]),
        message=message,
        messages_synced=int(report["messages"]),
        failed_chats=failed,
        seconds=round(float(report["seconds"]), 3),
    )
