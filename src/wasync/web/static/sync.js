// Sync state of a session: what the mirror holds of each chat (messages stored, the
// oldest and newest, complete or not, open gaps and errors) with a Fill action that
// asks the phone for the rest of the chat's history.
"use strict";

(function () {
  const session = document.body.dataset.session;
  const base = `/api/sessions/${encodeURIComponent(session)}`;
  const rows = document.getElementById("sync-rows");
  const more = document.getElementById("more-sync");
  const summary = document.getElementById("sync-summary");
  const shown = new Map(); // chatJid -> row
  const known = new Map(); // chatJid -> the item it shows
  let cursor = null;

  const day = (key) => (key && key.timestamp ? new Date(key.timestamp * 1000).toLocaleString([], {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "—");

  function stateCell(item) {
    const cell = W.el("td", {});
    let text = "Complete", cls = "complete";
    if (item.lastError) { text = `Error: ${item.lastError}`; cls = "error"; }
    else if (!item.fullySynced) { text = "More on the phone"; cls = "partial"; }
    const job = item.backfill;
    if (job && (job.state === "queued" || job.state === "running")) { text = `Filling… ${job.messagesSynced} messages so far`; cls = "partial"; }
    cell.append(W.el("span", { class: `state ${cls}`, dataset: { state: cls }, text }));
    if (item.gap) cell.append(W.el("span", { class: "gap small", text: `Gap after ${day(item.gap.since)} (${item.gap.status})` }));
    return cell;
  }

  function row(item) {
    known.set(item.chatJid, item);
    const name = item.name || item.chatJid.split("@")[0];
    const fill = W.el("button", { type: "button", class: "secondary small fill", text: "Fill",
      title: "Ask the phone for the rest of this chat's history", onclick: () => fillChat(item.chatJid, fill) });
    const busy = item.backfill && (item.backfill.state === "queued" || item.backfill.state === "running");
    fill.hidden = item.fullySynced && !item.gap;
    fill.disabled = busy || item.onDemandHistory === false;
    if (item.onDemandHistory === false) fill.title = "This session's engine cannot ask the phone for history";
    const tr = W.el("tr", { dataset: { jid: item.chatJid } },
      W.el("td", {}, W.el("div", { class: "chat-cell" },
        W.el("a", { href: `/ui/sessions/${encodeURIComponent(session)}/chats/${encodeURIComponent(item.chatJid).replace(/%40/g, "@")}`, text: name }),
        W.el("span", { class: "muted small", text: item.kind === "group" ? "group" : item.chatJid.split("@")[0] }))),
      W.el("td", { class: "num stored", text: Number(item.stored).toLocaleString() }),
      W.el("td", { class: "optional nowrap", text: day(item.oldest) }),
      W.el("td", { class: "optional nowrap", text: day(item.newest) }),
      stateCell(item),
      W.el("td", {}, fill));
    const old = shown.get(item.chatJid);
    shown.set(item.chatJid, tr);
    if (old) old.replaceWith(tr); else rows.append(tr);
  }

  async function load(reset) {
    try {
      if (reset) { cursor = null; }
      const q = new URLSearchParams({ limit: "100" });
      if (cursor) q.set("cursor", cursor);
      const page = await W.api(`${base}/sync-state?${q}`);
      page.items.forEach(row);
      cursor = page.nextCursor;
      more.hidden = !cursor;
      const items = [...shown.values()];
      const complete = items.filter((tr) => tr.querySelector(".state.complete")).length;
      summary.textContent = `${items.length} chats shown · ${complete} complete`;
    } catch (e) {
      if (e.status === 404) W.notFound(`There is no session named “${session}”.`);
      else if (e.status) W.toast(e.message, "error");
    }
  }

  // One chat's state again (while it fills); its count comes with the next page load.
  async function refreshChat(jid) {
    const item = await W.api(`${base}/chats/${encodeURIComponent(jid)}/sync-state`);
    row(Object.assign({}, known.get(jid), item));
    return item;
  }

  async function fillChat(jid, button) {
    button.disabled = true;
    try {
      const answer = await W.api(`${base}/chats/${encodeURIComponent(jid)}/history/full`, { method: "POST" });
      if (answer.status === "fully_synced") W.toast("That chat is already complete.");
      for (let i = 0; i < 120; i++) {
        const item = await refreshChat(jid);
        const job = item.backfill;
        if (item.fullySynced || item.lastError || (job && job.state === "failed")) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      await load(true);
    } catch (e) {
      W.toast(e.message, "error");
      button.disabled = false;
    }
  }

  more.addEventListener("click", () => load(false));
  W.requireLogin().then(() => {
    load(true);
    W.onReconnect(() => load(true));
    W.live([session], {
      "history.progress": (d) => { if (d && d.chatJid && shown.has(d.chatJid)) refreshChat(d.chatJid).catch(() => {}); },
    });
  }).catch(() => {});
})();
