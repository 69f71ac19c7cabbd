// Message search on the chats page: a box above the chat list; hits (newest first,
// with their chat) replace the list while a search is shown, and a hit opens its
// chat at the message (/ui/sessions/{s}/chats/{jid}?message={id}). Self-contained:
// it only needs app.js (window.W) and the elements of its own block in chats.html.
"use strict";

(function () {
  const form = document.getElementById("message-search");
  if (!form) return;
  const input = document.getElementById("message-search-input");
  const box = document.getElementById("search-results");
  const session = document.body.dataset.session;
  const base = `/api/sessions/${encodeURIComponent(session)}/search`;
  const PAGE = 20;
  const WORD = /[\p{L}\p{N}]+/gu;
  let generation = 0; // answers to an older query are dropped

  function hide() {
    box.hidden = true;
    box.replaceChildren();
    document.body.classList.remove("searching");
  }

  // The text with every searched word marked, built as DOM nodes (never as HTML).
  function marked(text, words) {
    const out = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(WORD)) {
      if (!words.has(match[0].toLowerCase())) continue;
      out.append(text.slice(last, match.index), W.el("mark", { text: match[0] }));
      last = match.index + match[0].length;
    }
    out.append(text.slice(last));
    return out;
  }

  function hitLink(hit) {
    const chat = encodeURIComponent(hit.chat.jid);
    return `/ui/sessions/${encodeURIComponent(session)}/chats/${chat}` +
      `?message=${encodeURIComponent(hit.messageId)}`;
  }

  function row(hit, words) {
    const who = hit.fromMe ? "You" : hit.senderName || hit.senderJid.split("@")[0];
    return W.el("li", { class: "search-hit" },
      W.el("a", { href: hitLink(hit), dataset: { jid: hit.chat.jid, message: hit.messageId } },
        W.el("span", { class: "search-hit-head" },
          W.el("strong", { text: hit.chat.displayName }),
          W.el("time", { class: "muted small", text: W.longTime(hit.timestamp) })),
        W.el("span", { class: "search-hit-text" },
          hit.chat.kind === "group" ? W.el("span", { class: "muted", text: `${who}: ` }) : null,
          marked(hit.text || "", words))));
  }

  async function show(query, cursor) {
    const mine = ++generation;
    const words = new Set((query.match(WORD) || []).map((w) => w.toLowerCase()));
    const params = new URLSearchParams({ q: query, limit: String(PAGE) });
    if (cursor) params.set("before", cursor);
    let page;
    try {
      page = await W.api(`${base}?${params}`);
    } catch (err) {
      if (mine !== generation) return;
      box.replaceChildren(W.el("li", { class: "search-note", role: "alert", text: err.message }));
      box.hidden = false;
      return;
    }
    if (mine !== generation) return;
    if (!cursor) box.replaceChildren();
    box.querySelector(".search-more")?.remove();
    for (const hit of page.items) box.append(row(hit, words));
    if (!box.querySelector(".search-hit")) {
      box.append(W.el("li", { class: "search-note", text: `No message holds “${query}”.` }));
    }
    if (page.nextCursor) {
      box.append(W.el("li", { class: "search-more" },
        W.el("button", {
          type: "button", class: "ghost wide", text: "More results",
          onclick: () => show(query, page.nextCursor),
        })));
    }
    box.hidden = false;
    document.body.classList.add("searching");
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const query = input.value.trim();
    if (query.match(WORD)) show(query, null);
    else hide();
  });
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const query = input.value.trim();
    if (!query.match(WORD)) { generation++; hide(); return; }
    timer = setTimeout(() => show(query, null), 300);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { input.value = ""; generation++; hide(); }
  });
})();
