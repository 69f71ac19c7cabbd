"""The JSON shapes of the API (camelCase on the wire), as documented in OpenAPI."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# The largest ids the tables hold: BIGINT ids (jobs) and INTEGER ids (sessions,
# webhook endpoints; 32 bits on PostgreSQL). A larger one reached SQLite as an
# OverflowError (a 500) and PostgreSQL as "integer out of range": bounded here instead.
MAX_ID = 2**63 - 1
MAX_SMALL_ID = 2**31 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
SmallRowId = Annotated[int, Field(ge=1, le=MAX_SMALL_ID)]


def id_bounds(description: str, *, small: bool = False) -> dict[str, Any]:
    """Bounds and description of an id in a path or query (`Path(**id_bounds(...))`)."""
    return {"ge": 1, "le": MAX_SMALL_ID if small else MAX_ID, "description": description}


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def json_response(data: dict[str, Any], status_code: int = 200) -> Response:
    """JSON of data built in the shape of a route's `response_model`, served as is: the
    hottest routes skip FastAPI's validation of it (the model still documents them)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode(), status_code, media_type="application/json")


class ParameterProblem(Model):
    loc: list[str | int] = Field(description='Where: e.g. ["query", "limit"].')
    msg: str = Field(description="What is wrong with it.")


class ErrorBody(Model):
    error: str = Field(description="A short machine-readable code, e.g. not_found.")
    detail: str = Field(description="A sentence for people.")
    errors: list[ParameterProblem] | None = Field(
        default=None, description="422 only: every parameter problem, one object each."
    )


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route can answer, as ErrorBody."""
    return {code: {"model": ErrorBody} for code in codes}


class HistoryRequestOut(Model):
    job_id: int | None = Field(description="The history job; null when fully synced.")
    status: Literal["queued", "already_queued", "fully_synced"]


class EnqueuedOut(Model):
    enqueued: int = Field(description="Jobs queued now (those already waiting are not).")


# Sessions.


class Capabilities(Model):
    on_demand_history: bool
    newest_history: bool = False
    pair_code: bool
    list_chats: bool
    list_contacts: bool
    list_groups: bool
    profile_pictures: bool
    media_download: bool


class PairingState(Model):
    qr: str | None = Field(description="The current QR string (render it, or get qr.png).")
    phone_code: str | None = Field(description="The last phone pair code asked for.")
    updated_at: float


class Session(Model):
    name: str
    engine: str
    status: str = Field(
        description="connected, disconnected, connecting, pairing, logged_out, banned or replaced"
    )
    status_reason: str | None
    jid: str | None = Field(description="The account's own JID, once paired.")
    running: bool = Field(description="Whether a node (this server or another) mirrors it now.")
    node: str | None = Field(
        default=None,
        description="The node that runs it (its name, or the command that holds it); null "
        "when none does.",
    )
    syncing: bool = Field(description="Whether a sync-chats run is in progress.")
    capabilities: Capabilities | None
    pairing: PairingState | None
    error: str | None = Field(description="Why the session could not be started, if so.")
    created_at: int
    updated_at: int


class NodeOut(Model):
    id: str = Field(description="The node's name (--node-name).")
    address: str | None = Field(description="Where the node serves its API.")
    sessions: list[str] = Field(description="The sessions it runs.")
    heartbeat_at: float
    started_at: float | None
    host: str | None = None
    pid: int | None = None
    stats: dict[str, Any] = Field(default_factory=dict, description="The node's own figures.")


class ClusterOut(Model):
    nodes: list[NodeOut]
    holders: dict[str, str] = Field(
        default_factory=dict,
        description="Sessions held by something other than a node (a command), by holder.",
    )


class SessionList(Model):
    items: list[Session]


class CreateSession(Model):
    name: str = Field(
        description="1-64 letters, digits, '.', '_' or '-'", min_length=1, max_length=64
    )
    engine: str | None = Field(
        default=None, description="neonize or simulator; default: the server's setting."
    )


class PairPhone(Model):
    phone: str = Field(description="The phone number with country code, e.g. +55 11 99999-0000.")


class PairCode(Model):
    code: str = Field(description="Type this code on the phone: Linked devices > Link with phone.")


class SyncChatsResult(Model):
    success: bool
    chats_processed: int
    message: str
    messages_synced: int
    failed_chats: list[dict[str, str]]
    seconds: float


# Chats and messages.


class MessagePreview(Model):
    message_id: str
    sender_jid: str
    from_me: bool
    timestamp: int
    kind: str
    text: str | None
    push_name: str | None
    revoked: bool


class ChatItem(Model):
    jid: str = Field(description="The key the chat is kept under: a person's LID when known.")
    phone: str | None = Field(None, description="A direct chat's phone number, when known.")
    lid: str | None = Field(None, description="A direct chat's LID, when known.")
    kind: str
    name: str | None
    display_name: str
    last_message_at: int | None
    unread_count: int
    archived: bool
    pinned: bool
    muted_until: int | None
    profile_picture: str | None = Field(
        description="A path under /media/avatars/..., 'none' when WhatsApp has none or "
        "refuses, null when not fetched yet."
    )
    profile_picture_timestamp: int | None
    last_message: MessagePreview | None


class ChatPage(Model):
    items: list[ChatItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: end.")


class SyncStateOut(Model):
    newest_message_id: str | None
    newest_timestamp: int | None
    oldest_message_id: str | None
    oldest_timestamp: int | None
    fully_synced: bool
    last_synced_at: int | None
    last_error: str | None


class ChatDetail(ChatItem):
    topic: str | None = None
    owner_jid: str | None = None
    group_created_at: int | None = None
    participant_count: int | None = None
    sync_state: SyncStateOut | None = None


class MediaOut(Model):
    mimetype: str | None
    size: int | None
    filename: str | None
    url: str = Field(description="Download path (needs the API key).")


class Reaction(Model):
    sender_jid: str
    sender_phone: str | None = None
    sender_lid: str | None = None
    emoji: str
    timestamp: int


class QuotedOut(Model):
    cursor: str = Field(description="Keyset cursor of the quoted message.")
    message_id: str
    sender_jid: str
    sender_name: str | None
    from_me: bool
    timestamp: int
    kind: str
    text: str | None
    revoked: bool


class MessageOut(Model):
    cursor: str = Field(description="Keyset cursor of this message: page before or after it.")
    chat_jid: str
    sender_jid: str
    sender_phone: str | None = Field(None, description="The sender's phone number, when known.")
    sender_lid: str | None = Field(None, description="The sender's LID, when known.")
    sender_name: str | None
    message_id: str
    from_me: bool
    timestamp: int
    kind: str
    text: str | None
    quoted_id: str | None
    quoted: QuotedOut | None = Field(
        description="The message this one replies to, when the mirror holds it."
    )
    sender_picture: str | None = Field(
        description="Path of the sender's stored profile picture (others' messages)."
    )
    sender_picture_timestamp: int | None
    push_name: str | None
    media: MediaOut | None
    edited_at: int | None
    revoked_at: int | None
    revoked_by: str | None
    reactions: list[Reaction]


class MessagePage(Model):
    items: list[MessageOut]
    next_cursor: str | None = Field(
        description="Pass as `before` (or `after`, when paging forwards) for the next page."
    )
    newer_cursor: str | None = Field(
        None,
        description="With `around`: pass as `after` for the messages newer than this page "
        "(null when the page reaches the newest).",
    )


class ChatRef(Model):
    jid: str
    kind: str
    name: str | None
    display_name: str


class SearchHit(MessageOut):
    chat: ChatRef = Field(description="The chat the message is in.")


class SearchPage(Model):
    items: list[SearchHit]
    next_cursor: str | None = Field(description="Pass as `before` for the next (older) page.")


class Participant(Model):
    jid: str
    name: str | None
    phone: str | None
    lid: str | None
    is_admin: bool
    is_super_admin: bool


class ParticipantList(Model):
    group_jid: str
    items: list[Participant]


class ContactOut(Model):
    jid: str
    name: str | None
    push_name: str | None
    business_name: str | None
    phone: str | None
    lid: str | None
    display_name: str
    profile_picture: str | None
    profile_picture_timestamp: int | None


class ContactPage(Model):
    items: list[ContactOut]
    next_cursor: str | None


# Queues.


class JobError(Model):
    id: int
    key: str | None
    state: str
    attempts: int
    error: str
    at: float


class DepthPoint(Model):
    at: float
    queued: int
    running: int


class QueueSeries(Model):
    minutes: list[int] = Field(description="Start of each minute of the last hour (epoch s).")
    done: list[int] = Field(description="Jobs finished done in each minute.")
    failed: list[int] = Field(description="Jobs that gave up (failed) in each minute.")
    depth: list[DepthPoint] = Field(
        description="Queued and running jobs, sampled every `depthInterval` seconds "
        "(kept in memory: empty after a restart, and with `session`)."
    )


class DeadLetter(Model):
    id: int
    kind: str
    key: str | None
    attempts: int
    error: str | None
    failed_at: float


class SessionJobs(Model):
    session: str | None = Field(description="null: jobs of no session (deliveries, commands).")
    counts: dict[str, dict[str, int]] = Field(description="{kind: {state: n}}.")


class QueueOut(Model):
    kind: str
    counts: dict[str, int] = Field(description="Jobs by state: queued, running, done, failed.")
    done_per_minute: float = Field(description="Jobs finished in the last 5 minutes, per minute.")
    failed_per_minute: float
    recent_errors: list[JobError]
    stats: dict[str, Any] = Field(description="Figures the queue's worker reports (rate, ...).")
    series: QueueSeries | None = None
    dead_letters: list[DeadLetter] = Field(
        default_factory=list, description="Failed jobs, newest first (Retry or Discard them)."
    )


class NodeFigures(Model):
    node: str
    sessions: list[str]
    jobs_processed: dict[str, int] = Field(description="Jobs it ran to an outcome, by kind.")
    events_committed: int | None = None


class JobRetried(Model):
    id: int
    state: Literal["queued"]


class QueuesOut(Model):
    queues: list[QueueOut]
    generated_at: float
    nodes: list[NodeFigures] = Field(
        default_factory=list, description="Per node of the cluster (this one on SQLite)."
    )
    sessions: list[SessionJobs] = Field(default_factory=list)
    depth_interval: float | None = Field(
        None, description="Seconds between depth samples (null: no sampler running)."
    )
