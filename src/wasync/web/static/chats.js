// Chats page: the chat list (search, filter, keyset pages; it holds still under the
// pointer), a chat's messages at its own address with "load older" / "load full
// history", jumps to quoted messages, live messages and the sync progress bar.
"use strict";

(function () {
  const session = document.body.dataset.session;
  const base = `/api/sessions/${encodeURIComponent(session)}`;
  const chatPath = (jid) => `${base}/chats/${encodeURIComponent(jid)}`;
  const pagePath = `/ui/sessions/${encodeURIComponent(session)}`;
  const chatPage = (jid) => `${pagePath}/chats/${encodeURIComponent(jid).replace(/%40/g, "@")}`;
  const CHAT_PAGE = 40;
  const MESSAGE_PAGE = 30;

  const $ = (id) => document.getElementById(id);
  const layout = $("layout");
  const list = $("chat-list");
  const moreChats = $("more-chats");
  const progress = $("sync-progress");
  const messagesBox = $("messages");
  const messageList = $("message-list");
  const olderButton = $("load-older");
  const historyNote = $("history-note");
  const historyStatus = $("history-status");
  const newPill = $("new-chats");
  const jumpLatest = $("jump-latest");

  // `moved`: chats with new activity that wait for the pill to move them up.
  const chats = { cursor: null, kind: "", search: "", items: new Map(), loading: false, moved: new Set() };
  let open = null; // {jid, chat, olderCursor, newerCursor, storedExhausted, keys: Set}
  let pointerOnList = false;

  // Chat list.

  function preview(chat) {
    const last = chat.lastMessage;
    if (!last) return "";
    if (last.revoked) return "Message deleted";
    const who = last.fromMe ? "You: " : chat.kind === "group" && last.pushName ? `${last.pushName}: ` : "";
    const body = last.text || (last.kind !== "text" ? `[${last.kind}]` : "");
    return who + body;
  }

  function chatNode(chat) {
    const node = W.el("li", { class: "chat-item", dataset: { jid: chat.jid } });
    const button = W.el("button", { type: "button", onclick: () => openChat(chat.jid) });
    const face = W.avatar(W.el("span"), chat.displayName, chat.jid, chat.profilePicture, chat.profilePictureTimestamp);
    const top = W.el("div", { class: "row" },
      W.el("span", { class: "name", text: chat.displayName }),
      W.el("span", { class: "time", text: W.shortTime(chat.lastMessageAt) }));
    const bottom = W.el("div", { class: "row" },
      W.el("span", { class: "preview", text: preview(chat) }),
      chat.unreadCount ? W.el("span", { class: "unread", text: String(chat.unreadCount) }) : null);
    button.append(face, W.el("div", { class: "chat-text" }, top, bottom));
    node.append(button);
    if (open && open.jid === chat.jid) node.classList.add("active");
    return node;
  }

  // The list holds still while it is being used (the pointer on it, or scrolled down):
  // a row that would move up is updated where it is and counted on the pill instead.
  function holding() {
    return pointerOnList || list.scrollTop > 4;
  }

  function showPill() {
    const n = chats.moved.size;
    newPill.textContent = `${n} chat${n === 1 ? "" : "s"} with new messages`;
    newPill.hidden = n === 0;
  }

  function putChat(chat, { top = false } = {}) {
    const old = chats.items.get(chat.jid);
    const node = chatNode(chat);
    if (top && holding()) {
      chats.moved.add(chat.jid);
      showPill();
      if (!old || old.waiting) {
        chats.items.set(chat.jid, { chat, node, waiting: true }); // shown when moved up
      } else {
        chats.items.set(chat.jid, { chat, node });
        old.node.replaceWith(node);
      }
      return;
    }
    chats.items.set(chat.jid, { chat, node });
    if (old && !old.waiting) old.node.replaceWith(node);
    if (top || (old && old.waiting)) list.prepend(node);
    else if (!old) list.append(node);
    if (top && chats.moved.delete(chat.jid)) showPill();
  }

  function moveUpWaiting() {
    const waiting = [...chats.moved].map((jid) => chats.items.get(jid)).filter(Boolean);
    waiting.sort((a, b) => (a.chat.lastMessageAt || 0) - (b.chat.lastMessageAt || 0));
    for (const entry of waiting) { entry.waiting = false; list.prepend(entry.node); }
    chats.moved.clear();
    showPill();
    list.scrollTop = 0;
  }

  async function loadChats(reset) {
    if (chats.loading) return;
    chats.loading = true;
    try {
      if (reset) { chats.cursor = null; chats.items.clear(); chats.moved.clear(); showPill(); list.replaceChildren(); }
      const q = new URLSearchParams({ limit: String(CHAT_PAGE) });
      if (chats.cursor) q.set("cursor", chats.cursor);
      if (chats.kind) q.set("kind", chats.kind);
      if (chats.search) q.set("search", chats.search);
      const page = await W.api(`${base}/chats?${q}`);
      page.items.forEach((c) => putChat(c));
      chats.cursor = page.nextCursor;
      moreChats.hidden = !page.nextCursor;
      $("chats-empty").hidden = chats.items.size > 0;
    } catch (e) {
      W.toast(e.message, "error");
    } finally {
      chats.loading = false;
    }
  }

  // Messages.

  function addMessages(items, { older }) {
    const fresh = items.filter((m) => !open.keys.has(`${m.senderJid}|${m.messageId}`));
    fresh.forEach((m) => open.keys.add(`${m.senderJid}|${m.messageId}`));
    // API pages are newest first; the list shows the oldest at the top.
    const group = open.chat && open.chat.kind === "group";
    const nodes = fresh.map((m) => WM.messageNode(m, group, jumpTo)).reverse();
    if (older) {
      const keep = messagesBox.scrollHeight - messagesBox.scrollTop;
      messageList.prepend(...nodes);
      WM.relayout(messageList);
      messagesBox.scrollTop = messagesBox.scrollHeight - keep;
    } else {
      const atBottom = messagesBox.scrollHeight - messagesBox.scrollTop - messagesBox.clientHeight < 80;
      messageList.append(...nodes);
      WM.relayout(messageList);
      if (atBottom) messagesBox.scrollTop = messagesBox.scrollHeight;
    }
    return fresh.length;
  }

  function highlight(messageId) {
    const li = messageList.querySelector(`.msg[data-id="${CSS.escape(messageId)}"]`);
    if (!li) return false;
    messageList.querySelectorAll(".msg.highlight").forEach((n) => n.classList.remove("highlight"));
    li.classList.add("highlight");
    li.scrollIntoView({ block: "center" });
    return true;
  }

  // A quoted reply's button: the quoted message on screen, or the conversation
  // reloaded around it (its address then names it, so a reload comes back here).
  function jumpTo(quoted) {
    if (highlight(quoted.messageId)) return;
    history.replaceState(null, "", `${chatPage(open.jid)}?message=${encodeURIComponent(quoted.messageId)}`);
    openChat(open.jid, { push: false, around: quoted.messageId });
  }

  function oldestCursor() {
    return open.oldest;
  }

  function describe(chat) {
    const parts = [];
    if (chat.kind === "group") parts.push(`${chat.participantCount || 0} participants`);
    else {
      // Both of a person's addresses: the number (when known) and the LID (when known).
      if (chat.phone) parts.push(`+${chat.phone}`);
      if (chat.lid) parts.push(`LID ${chat.lid.split("@")[0]}`);
      if (!chat.phone && !chat.lid) parts.push(chat.jid.split("@")[0].replace(/^(\d)/, "+$1"));
    }
    const state = chat.syncState;
    if (state && state.fullySynced) parts.push("all history mirrored");
    else if (state && state.oldestTimestamp) parts.push(`mirrored since ${new Date(state.oldestTimestamp * 1000).toLocaleDateString()}`);
    return parts.join(" · ");
  }

  function updateOlderControls() {
    const full = open.chat.syncState && open.chat.syncState.fullySynced;
    if (open.storedExhausted && full) {
      olderButton.hidden = true;
      historyNote.textContent = "This is the beginning of the chat.";
      historyNote.hidden = false;
    } else {
      olderButton.hidden = false;
    }
    $("full-history").hidden = !!full;
  }

  function closeChat() {
    open = null;
    for (const { node } of chats.items.values()) node.classList.remove("active");
    layout.classList.remove("show-chat");
    $("chat-placeholder").hidden = false;
    $("chat-view").hidden = true;
  }

  // `around`: a message id to show (a quoted message, a search hit) instead of the newest.
  async function openChat(jid, { push = true, around = null } = {}) {
    if (push && location.pathname !== chatPage(jid)) history.pushState(null, "", chatPage(jid));
    for (const { node } of chats.items.values()) node.classList.toggle("active", node.dataset.jid === jid);
    layout.classList.add("show-chat");
    $("chat-placeholder").hidden = true;
    $("chat-view").hidden = false;
    messageList.replaceChildren();
    historyNote.hidden = true;
    historyStatus.hidden = true;
    jumpLatest.hidden = true;
    open = { jid, chat: null, olderCursor: null, newerCursor: null, oldest: null, storedExhausted: false, keys: new Set() };
    const current = open;
    const latest = `${chatPath(jid)}/messages?limit=${MESSAGE_PAGE}`;
    try {
      const [chat, page] = await Promise.all([
        W.api(chatPath(jid)),
        around
          ? W.api(`${latest}&around=${encodeURIComponent(around)}`).catch((e) => {
            if (e.status !== 404) throw e;
            W.toast("That message is not stored in the mirror: showing the newest.");
            return W.api(latest);
          })
          : W.api(latest),
      ]);
      if (open !== current) return;
      open.chat = chat;
      $("chat-title").textContent = chat.displayName;
      $("chat-subtitle").textContent = describe(chat);
      W.avatar($("chat-avatar"), chat.displayName, chat.jid, chat.profilePicture, chat.profilePictureTimestamp);
      addMessages(page.items, { older: false });
      open.olderCursor = page.nextCursor;
      open.newerCursor = page.newerCursor || null;
      jumpLatest.hidden = !open.newerCursor;
      open.storedExhausted = !page.nextCursor;
      if (page.items.length) open.oldest = page.items[page.items.length - 1].cursor;
      messagesBox.scrollTop = messagesBox.scrollHeight;
      if (around) highlight(around);
      updateOlderControls();
    } catch (e) {
      if (e.status === 404 && open === current) {
        $("chat-title").textContent = jid;
        $("chat-subtitle").textContent = "";
        note("This chat is not in the mirror.");
        olderButton.hidden = true;
        $("full-history").hidden = true;
      } else {
        W.toast(e.message, "error");
      }
    }
  }

  async function loadStoredOlder() {
    const before = open.olderCursor || oldestCursor();
    if (!before) return 0;
    const page = await W.api(`${chatPath(open.jid)}/messages?limit=${MESSAGE_PAGE}&before=${encodeURIComponent(before)}`);
    const added = addMessages(page.items, { older: true });
    if (page.items.length) open.oldest = page.items[page.items.length - 1].cursor;
    open.olderCursor = page.nextCursor;
    open.storedExhausted = !page.nextCursor;
    return added;
  }

  function note(text) {
    historyNote.textContent = text;
    historyNote.hidden = !text;
  }

  // Ask WhatsApp (through the history feature) and wait until the mirror has more.
  async function requestHistory(kind) {
    const jid = open.jid;
    const url = kind === "full" ? `${chatPath(jid)}/history/full` : `${chatPath(jid)}/history/older?pages=1`;
    try {
      await W.api(url, { method: "POST" });
    } catch (e) {
      if (e.status === 404 && e.detail === "Not Found") {
        // No history route: the server was built without on-demand history.
        note("Loading older messages from WhatsApp is not available on this server.");
      } else {
        note(e.message);
      }
      return false;
    }
    historyStatus.textContent = kind === "full" ? "Loading the full history from WhatsApp…" : "Asking WhatsApp for older messages…";
    historyStatus.hidden = false;
    const before = open.chat.syncState ? open.chat.syncState.oldestTimestamp : null;
    for (let i = 0; i < 90 && open && open.jid === jid; i++) {
      await new Promise((r) => { open.wake = r; setTimeout(r, 2000); });
      const chat = await W.api(chatPath(jid));
      const state = chat.syncState || {};
      if (state.oldestTimestamp !== before || state.fullySynced || state.lastError) {
        open.chat = chat;
        $("chat-subtitle").textContent = describe(chat);
        if (state.lastError) note(state.lastError);
        if (kind !== "full" || state.fullySynced || state.lastError) break;
      }
    }
    historyStatus.hidden = true;
    return true;
  }

  async function loadOlder() {
    if (!open || !open.chat) return;
    olderButton.disabled = true;
    note("");
    try {
      if (!open.storedExhausted) {
        await loadStoredOlder();
      } else if (await requestHistory("older")) {
        const added = await loadStoredOlder();
        if (!added && open.chat.syncState && open.chat.syncState.fullySynced) note("This is the beginning of the chat.");
      }
      updateOlderControls();
    } catch (e) {
      W.toast(e.message, "error");
    } finally {
      olderButton.disabled = false;
    }
  }

  async function loadFull() {
    if (!open || !open.chat) return;
    const button = $("full-history");
    button.disabled = true;
    note("");
    try {
      if (await requestHistory("full")) {
        open.olderCursor = null;
        for (let i = 0; i < 200; i++) {
          const added = await loadStoredOlder();
          if (!added || open.storedExhausted) break;
        }
        updateOlderControls();
      }
    } catch (e) {
      W.toast(e.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  // Live events.

  function onMessage(data) {
    const entry = chats.items.get(data.chatJid);
    if (entry) {
      const chat = Object.assign({}, entry.chat, {
        lastMessageAt: data.timestamp,
        lastMessage: { messageId: data.messageId, senderJid: data.senderJid, fromMe: data.fromMe,
          timestamp: data.timestamp, kind: data.kind, text: data.text, pushName: data.pushName, revoked: false },
      });
      putChat(chat, { top: !chats.search && !chats.kind });
    } else if (!chats.search && !chats.kind) {
      W.api(chatPath(data.chatJid)).then((chat) => putChat(chat, { top: true })).catch(() => {});
    }
    // (Not while an older part is on screen: "Jump to latest" shows them.)
    if (open && open.chat && open.jid === data.chatJid && !open.newerCursor) {
      if (data.quotedId) {
        // The event has the quoted message's id only: read the reply as the API shows it.
        const current = open;
        W.api(`${chatPath(data.chatJid)}/messages?limit=1&around=${encodeURIComponent(data.messageId)}`)
          .then((page) => { if (open === current) addMessages(page.items, { older: false }); })
          .catch(() => {});
        return;
      }
      const media = data.media ? Object.assign({}, data.media, {
        url: `${chatPath(data.chatJid)}/messages/${encodeURIComponent(data.messageId)}/media?sender=${encodeURIComponent(data.senderJid)}`,
      }) : null;
      addMessages([Object.assign({ reactions: [], senderName: data.pushName }, data, { media })], { older: false });
    }
  }

  function onEdit(data, deleted) {
    if (!open || open.jid !== data.chatJid) return;
    const li = messageList.querySelector(`[data-key="${CSS.escape(`${data.senderJid}|${data.messageId}`)}"]`);
    if (!li) return;
    const text = li.querySelector(".text");
    if (deleted) {
      li.querySelector(".bubble").replaceChildren(W.el("div", { class: "text deleted", text: "This message was deleted" }));
    } else if (text) {
      text.textContent = data.text;
    }
  }

  // A person's chat kept under their number now lives under their LID: one entry.
  function onMerged(data) {
    const gone = chats.items.get(data.mergedJid);
    if (gone) { gone.node.remove(); chats.items.delete(data.mergedJid); }
    W.api(chatPath(data.jid)).then((chat) => putChat(chat, { top: !!gone })).catch(() => {});
    if (open && open.jid === data.mergedJid) openChat(data.jid);
  }

  async function syncNow() {
    const button = $("sync-button");
    button.disabled = true;
    progress.hidden = false;
    try {
      const result = await W.api(`${base}/sync-chats?limitPerChat=50`, { method: "POST" });
      W.finishProgress(progress, `${result.chatsProcessed} chats, ${result.messagesSynced} messages`);
      loadChats(true);
    } catch (e) {
      if (e.status === 409 && /already running/.test(e.message)) {
        W.toast("A sync of this session is already running: following it.");
      } else {
        W.toast(e.message, "error");
        progress.hidden = true;
      }
    } finally {
      button.disabled = false;
    }
  }

  async function loadStatus() {
    try {
      const s = await W.api(base);
      W.statusBadge($("session-status"), s.status);
      $("sync-button").disabled = s.status !== "connected";
      if (s.syncing) progress.hidden = false;
      return true;
    } catch (e) {
      if (e.status === 404) {
        W.notFound(`There is no session named “${session}”.`);
        return false;
      }
      if (e.status) W.toast(e.message, "error");
      return true;
    }
  }

  // The address names the chat (and maybe a message): open what it says.
  function followAddress() {
    const prefix = `${pagePath}/chats/`;
    if (!location.pathname.startsWith(prefix)) return closeChat();
    const jid = decodeURIComponent(location.pathname.slice(prefix.length));
    const message = new URLSearchParams(location.search).get("message");
    openChat(jid, { push: false, around: message });
  }

  // Wiring.

  let searchTimer = null;
  $("chat-search").addEventListener("input", (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { chats.search = e.target.value.trim(); loadChats(true); }, 250);
  });
  for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
    tab.addEventListener("click", () => {
      document.querySelectorAll(".tabs [role=tab]").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
      chats.kind = tab.dataset.kind;
      loadChats(true);
    });
  }
  moreChats.addEventListener("click", () => loadChats(false));
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && chats.cursor) loadChats(false);
  }).observe(moreChats);
  olderButton.addEventListener("click", loadOlder);
  $("full-history").addEventListener("click", loadFull);
  $("sync-button").addEventListener("click", syncNow);
  $("back").addEventListener("click", () => { history.pushState(null, "", pagePath); closeChat(); });
  jumpLatest.addEventListener("click", () => {
    history.replaceState(null, "", chatPage(open.jid));
    openChat(open.jid, { push: false });
  });
  newPill.addEventListener("click", moveUpWaiting);
  list.addEventListener("pointerenter", () => { pointerOnList = true; });
  list.addEventListener("pointerleave", () => { pointerOnList = false; });
  window.addEventListener("popstate", followAddress);

  W.requireLogin().then(async () => {
    if (!(await loadStatus())) return;
    W.onReconnect(() => { loadStatus(); loadChats(true); });
    loadChats(true);
    if (document.body.dataset.jid) followAddress();
    W.live([session], {
      message: onMessage,
      "message.edit": (d) => onEdit(d, false),
      "message.delete": (d) => onEdit(d, true),
      "chat.merged": onMerged,
      sync_chats: (d) => {
        if (W.setProgress(progress, d)) loadChats(true);
      },
      "session.status": () => loadStatus(),
      "history.progress": (d) => {
        if (!open || d.chatJid !== open.jid) return;
        if (!historyStatus.hidden) {
          historyStatus.textContent = d.error
            ? `WhatsApp did not answer: ${d.error}${d.willRetry ? " (retrying)" : ""}`
            : `Loading history from WhatsApp… ${d.messagesSynced || 0} messages so far`;
        }
        if (open.wake) open.wake();
      },
      avatar: (d) => {
        const entry = d && d.jid ? chats.items.get(d.jid) : null;
        if (entry) W.api(chatPath(d.jid)).then((chat) => putChat(chat)).catch(() => {});
      },
    });
  }).catch(() => {});
})();
