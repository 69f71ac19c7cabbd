"""A Discord webhook sink: avatar changes as an image with an embed, status alerts as text.

Discord's documented webhook contract (Execute Webhook):

- a file goes as `multipart/form-data` with the JSON message in the `payload_json`
  field and the file in `files[0]`; the embed shows it via `attachment://<filename>`
  and `attachments: [{id: 0, filename}]` describes it;
- `?wait=true` makes Discord answer with the created message (so success is known);
- a 429 answer carries `retry_after` (seconds) in its JSON body: nothing is sent
  before then;
- uploads above the limit are refused: pictures are shrunk below 8 MiB first.

`allowed_mentions: {parse: []}` keeps a contact named "@everyone" from pinging a
whole server.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from wasync.delivery import http
from wasync.delivery.webhook_sink import judge, send
from wasync.jobs.outcome import Defer, Retry
from wasync.jobs.outcome import JobOutcome as Outcome

FILE_LIMIT = 8 * 1024 * 1024
GREEN = 0x25D366
_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
DEFAULT_RETRY_AFTER = 5.0  # when a 429 forgets to say


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class DiscordMessage:
    payload: dict[str, Any]
    attachment: Attachment | None = None


def prepare_image(
    data: bytes, stem: str, limit: int = FILE_LIMIT
) -> tuple[Attachment | None, str | None]:
    """The picture as an attachment within `limit`, shrinking it if needed.

    Returns (attachment, None) or (None, why it cannot be attached).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            if len(data) <= limit and fmt in _FORMATS:
                ext, ctype = _FORMATS[fmt]
                return Attachment(f"{stem}.{ext}", data, ctype), None
            small = img.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None, "the picture is not an image Discord can show"
    side = max(small.size)
    while side >= 64:
        small.thumbnail((side, side))
        out = io.BytesIO()
        small.save(out, "JPEG", quality=85)
        if out.tell() <= limit:
            return Attachment(f"{stem}.jpg", out.getvalue(), "image/jpeg"), None
        side //= 2
    return None, f"the picture is larger than Discord's {limit // 2**20} MiB limit"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def avatar_message(
    *,
    phone: str | None,
    jid: str,
    name: str | None,
    session: str,
    picture: bytes | None,
    picture_id: str | None,
    when: float,
    note: str | None = None,
) -> DiscordMessage:
    who = f"+{phone}" if phone else jid
    title = _clip(f"{name} ({who})" if name else who, 256)
    stem = "avatar-" + "".join(c for c in (phone or jid) if c.isalnum())[:40]
    attachment, why_not = prepare_image(picture, stem) if picture is not None else (None, note)
    fields = [
        {"name": "Name", "value": _clip(name or "—", 1024), "inline": True},
        {"name": "Phone", "value": who, "inline": True},
        {
            "name": "Time",
            "value": f"<t:{int(when)}:f>",  # Discord renders it in the reader's time zone
            "inline": True,
        },
    ]
    embed: dict[str, Any] = {
        "title": title,
        "description": "New profile picture" if attachment else _clip(why_not or note or "", 4000),
        "color": GREEN,
        "fields": fields,
        "timestamp": dt.datetime.fromtimestamp(when, dt.UTC).isoformat(),
        "footer": {
            "text": _clip(
                f"session {session}" + (f" · picture {picture_id}" if picture_id else ""), 2048
            )
        },
    }
    payload: dict[str, Any] = {"embeds": [embed], "allowed_mentions": {"parse": []}}
    if attachment is not None:
        embed["image"] = {"url": f"attachment://{attachment.filename}"}
        payload["attachments"] = [
            {
                "id": 0,
                "filename": attachment.filename,
                "description": _clip(f"Profile picture of {title}", 1024),
            }
        ]
    return DiscordMessage(payload, attachment)


def text_message(content: str) -> DiscordMessage:
    return DiscordMessage({"content": _clip(content, 2000), "allowed_mentions": {"parse": []}})


def status_message(session: str, data: dict[str, Any]) -> DiscordMessage:
    reason = data.get("reason")
    status = str(data.get("status", "unknown")).replace("_", " ")
    return text_message(
        f"wasync session **{session}** is now **{status}**" + (f": {reason}" if reason else "")
    )


async def post(client: httpx.AsyncClient, url: str, message: DiscordMessage) -> Outcome:
    """Execute the webhook once; Done, Retry (permanent or not) or Defer (rate limit)."""
    request: dict[str, Any] = {"params": {"wait": "true"}}
    if message.attachment is None:
        request["json"] = message.payload
    else:
        a = message.attachment
        request["data"] = {"payload_json": json.dumps(message.payload)}
        request["files"] = {"files[0]": (a.filename, a.data, a.content_type)}
    answer, failed = await send(client, url, **request)
    if answer is None:
        assert failed is not None
        return failed
    if answer.status == 429:
        wait = rate_limit_wait(answer)
        if not _discords_own(answer):
            # A 429 without Discord's JSON (a proxy or CDN block page) may never end:
            # counted as a failed try, so it is dead-lettered in the end.
            return Retry("Discord answered 429 without its rate-limit body", retry_after=wait)
        scope = "global " if _is_global(answer) else ""
        return Defer(time.time() + wait, f"Discord {scope}rate limit: retry after {wait:g} s")
    return judge(answer, "Discord")


def _discords_own(answer: http.Answer) -> bool:
    """Discord's rate limits say so in JSON: `retry_after` (seconds) in the body."""
    body = answer.json()
    return isinstance(body, dict) and isinstance(body.get("retry_after"), int | float)


def rate_limit_wait(answer: http.Answer) -> float:
    """Seconds Discord asks for: `retry_after` in the JSON body, else Retry-After."""
    body = answer.json()
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, int | float) and value >= 0:
            return min(float(value), http.MAX_RETRY_AFTER)
    header = http.retry_after(answer)
    return header if header is not None else DEFAULT_RETRY_AFTER


def _is_global(answer: http.Answer) -> bool:
    body = answer.json()
    return isinstance(body, dict) and bool(body.get("global"))
