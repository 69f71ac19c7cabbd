// Rendering messages: bubbles with their time, day separators, quoted replies,
// reaction pills, media (images previewed, video and voice on click, documents
// downloaded), sender names and pictures in groups. Used by chats.js.
"use strict";

(function () {
  const kindLabel = { image: "Photo", video: "Video", audio: "Voice message", document: "Document", sticker: "Sticker",
    location: "Location", contact: "Contact", poll: "Poll", system: "System message" };

  const keyOf = (m) => `${m.senderJid}|${m.messageId}`;
  const senderName = (m) => m.senderName || m.pushName || m.senderJid.split("@")[0];

  function kb(size) {
    if (!size) return "";
    return size < 1024 * 1024 ? ` · ${Math.max(1, Math.round(size / 1024))} KB` : ` · ${(size / 1048576).toFixed(1)} MB`;
  }

  function imageNode(m) {
    const img = W.el("img", { class: m.kind === "sticker" ? "media-image sticker" : "media-image", alt: "", loading: "lazy" });
    const frame = W.el("button", { type: "button", class: "media-frame", title: "Open" }, img);
    W.blobUrl(m.media.url).then((url) => { img.src = url; img.alt = kindLabel[m.kind]; }).catch(() => {
      frame.replaceWith(W.el("span", { class: "media-missing", text: `${kindLabel[m.kind]} unavailable` }));
    });
    frame.addEventListener("click", () => { if (img.src) window.open(img.src, "_blank", "noopener"); });
    return frame;
  }

  // Video and voice are fetched only when asked for: they can be large.
  function playerNode(m) {
    const media = m.media;
    const label = `▶ ${kindLabel[m.kind]}${kb(media.size)}`;
    const button = W.el("button", { type: "button", class: "media-file media-play", text: label });
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.textContent = "Loading…";
      try {
        const url = await W.blobUrl(media.url);
        const player = W.el(m.kind === "video" ? "video" : "audio", { class: `media-${m.kind}`, controls: true, src: url });
        button.replaceWith(player);
        player.play().catch(() => {});
      } catch (err) {
        button.disabled = false;
        button.textContent = err.status === 410 ? `${kindLabel[m.kind]}: expired on WhatsApp` : `${kindLabel[m.kind]}: ${err.message}`;
      }
    });
    return button;
  }

  function documentNode(m) {
    const media = m.media;
    const name = media.filename || kindLabel[m.kind] || "File";
    return W.el("button", {
      type: "button", class: "media-file",
      onclick: async (e) => {
        const button = e.currentTarget;
        try {
          const link = W.el("a", { href: await W.blobUrl(media.url), download: name });
          document.body.append(link); link.click(); link.remove();
        } catch (err) {
          button.textContent = err.status === 410 ? `${name}: expired on WhatsApp` : `${name}: ${err.message}`;
        }
      },
    }, `⬇ ${name}${kb(media.size)}`);
  }

  function mediaNode(m) {
    if (m.kind === "image" || m.kind === "sticker") return imageNode(m);
    if (m.kind === "video" || m.kind === "audio") return playerNode(m);
    return documentNode(m);
  }

  // A quoted reply: who and what, a button that jumps to the quoted message.
  function quoteNode(m, onJump) {
    const q = m.quoted;
    if (!q) {
      return W.el("div", { class: "quote missing", title: "The quoted message is not in the mirror" },
        W.el("span", { class: "quote-text", text: "Reply to a message not stored here" }));
    }
    const who = q.fromMe ? "You" : q.senderName || q.senderJid.split("@")[0];
    const text = q.revoked ? "This message was deleted" : q.text || `[${kindLabel[q.kind] || q.kind}]`;
    return W.el("button", {
      type: "button", class: "quote", title: "Go to the quoted message",
      dataset: { quoted: q.messageId }, onclick: () => onJump(q),
    }, W.el("span", { class: "quote-sender", text: who }), W.el("span", { class: "quote-text", text }));
  }

  function reactionsNode(reactions) {
    const counts = new Map();
    for (const r of reactions) counts.set(r.emoji, (counts.get(r.emoji) || 0) + 1);
    const pills = [...counts].map(([emoji, n]) => W.el("span", {
      class: "pill", dataset: { emoji, count: String(n) }, title: `${n} × ${emoji}`,
    }, W.el("span", { class: "pill-emoji", text: emoji }), n > 1 ? W.el("span", { class: "pill-count", text: String(n) }) : null));
    return W.el("div", { class: "reactions" }, ...pills);
  }

  function messageNode(m, group, onJump) {
    const mine = m.fromMe;
    const li = W.el("li", {
      class: `msg${mine ? " mine" : ""}`,
      dataset: { key: keyOf(m), id: m.messageId, ts: String(m.timestamp), sender: m.senderJid },
    });
    if (group && !mine) {
      li.classList.add("with-face");
      li.append(W.avatar(W.el("span", { class: "face" }), senderName(m), m.senderJid, m.senderPicture, m.senderPictureTimestamp));
    }
    const bubble = W.el("div", { class: "bubble" });
    if (!mine && group) {
      const sender = W.el("div", { class: "sender", text: senderName(m) });
      sender.style.setProperty("--hue", W.hue(m.senderJid));
      bubble.append(sender);
    }
    if (m.revokedAt) {
      bubble.append(W.el("div", { class: "text deleted", text: "This message was deleted" }));
    } else {
      if (m.quotedId) bubble.append(quoteNode(m, onJump));
      if (m.media && m.media.url) bubble.append(mediaNode(m));
      else if (m.kind !== "text" && !m.text) bubble.append(W.el("div", { class: "text muted", text: `[${kindLabel[m.kind] || m.kind}]` }));
      if (m.text) bubble.append(W.el("div", { class: "text", text: m.text }));
    }
    const meta = W.el("div", { class: "meta" },
      m.editedAt ? W.el("span", { class: "edited", text: "edited" }) : null,
      W.el("time", { class: "clock", datetime: new Date(m.timestamp * 1000).toISOString(), text: W.clock(m.timestamp) }));
    meta.title = W.longTime(m.timestamp);
    bubble.append(meta);
    if (m.reactions && m.reactions.length) bubble.append(reactionsNode(m.reactions));
    li.append(bubble);
    return li;
  }

  // Day separators and grouping, recomputed after each insertion: a run of messages
  // by one sender shows the name and picture once.
  function relayout(list) {
    list.querySelectorAll(".day-sep").forEach((n) => n.remove());
    let day = null;
    let sender = null;
    for (const li of [...list.children]) {
      const d = new Date(Number(li.dataset.ts) * 1000);
      const label = d.toDateString();
      if (label !== day) {
        li.before(W.el("li", { class: "day-sep", role: "separator" }, W.el("span", { text: W.dayLabel(d) })));
        day = label;
        sender = null;
      }
      li.classList.toggle("cont", li.dataset.sender === sender);
      sender = li.dataset.sender;
    }
  }

  window.WM = { messageNode, relayout, keyOf };
})();
