// Rendering one message: text, media (fetched with the API key as blob: URLs),
// deletions, edits and reactions. Used by chats.js.
"use strict";

(function () {
  const kindLabel = { image: "Photo", video: "Video", audio: "Audio", document: "Document", sticker: "Sticker",
    location: "Location", contact: "Contact", poll: "Poll", system: "System message" };

  function mediaNode(m) {
    const media = m.media;
    if (m.kind === "image" || m.kind === "sticker") {
      const img = W.el("img", { class: "media-image", alt: "", loading: "lazy" });
      const frame = W.el("button", { type: "button", class: "media-frame", title: "Open" }, img);
      W.blobUrl(media.url).then((url) => { img.src = url; img.alt = kindLabel[m.kind]; }).catch(() => {
        frame.replaceWith(W.el("span", { class: "media-missing", text: `${kindLabel[m.kind]} unavailable` }));
      });
      frame.addEventListener("click", () => { if (img.src) window.open(img.src, "_blank", "noopener"); });
      return frame;
    }
    const size = media.size ? ` · ${Math.max(1, Math.round(media.size / 1024))} KB` : "";
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
    }, `⬇ ${name}${size}`);
  }

  function messageNode(m, group) {
    const mine = m.fromMe;
    const li = W.el("li", { class: `msg${mine ? " mine" : ""}`, dataset: { key: `${m.senderJid}|${m.messageId}` } });
    const bubble = W.el("div", { class: "bubble" });
    if (!mine && group) {
      bubble.append(W.el("div", { class: "sender", text: m.senderName || m.pushName || m.senderJid.split("@")[0] }));
    }
    if (m.revokedAt) {
      bubble.append(W.el("div", { class: "text deleted", text: "This message was deleted" }));
    } else {
      if (m.media && m.media.url) bubble.append(mediaNode(m));
      else if (m.kind !== "text" && !m.text) bubble.append(W.el("div", { class: "text muted", text: `[${kindLabel[m.kind] || m.kind}]` }));
      if (m.text) bubble.append(W.el("div", { class: "text", text: m.text }));
    }
    const meta = W.el("div", { class: "meta" }, m.editedAt ? "edited · " : "", W.shortTime(m.timestamp));
    meta.title = W.longTime(m.timestamp);
    bubble.append(meta);
    if (m.reactions && m.reactions.length) {
      bubble.append(W.el("div", { class: "reactions" }, m.reactions.map((r) => r.emoji).join(" ")));
    }
    li.append(bubble);
    return li;
  }

  window.WM = { messageNode };
})();
