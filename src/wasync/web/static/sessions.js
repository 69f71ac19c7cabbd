// Sessions page: status, pairing (QR or phone code), sync with a live progress bar.
"use strict";

(function () {
  const grid = document.getElementById("sessions");
  const empty = document.getElementById("sessions-empty");
  const template = document.getElementById("session-card");
  const cards = new Map(); // name -> {node, session}

  const path = (name) => `/api/sessions/${encodeURIComponent(name)}`;
  // Statuses a session does not leave by itself: pairing again is the way back.
  const STOPPED = new Set(["logged_out", "banned", "replaced"]);
  const STOPPED_TEXT = { logged_out: "Logged out", banned: "Banned", replaced: "Replaced", disconnected: "Stopped" };

  function card(name) {
    let entry = cards.get(name);
    if (entry) return entry;
    const node = template.content.firstElementChild.cloneNode(true);
    node.dataset.session = name;
    node.querySelector(".session-name").textContent = name;
    node.querySelector(".open-chats").href = `/ui/sessions/${encodeURIComponent(name)}`;
    node.querySelector(".sync").addEventListener("click", () => sync(name));
    node.querySelector(".logout").addEventListener("click", () => logout(name));
    node.querySelector(".delete").addEventListener("click", () => remove(name));
    node.querySelector(".retry-pairing").addEventListener("click", () => retryPairing(name));
    node.querySelector(".pair-phone").addEventListener("submit", (e) => pairPhone(e, name));
    grid.append(node);
    entry = { node, session: null, qrAt: 0 };
    cards.set(name, entry);
    return entry;
  }

  function render(session) {
    const entry = card(session.name);
    entry.session = session;
    const node = entry.node;
    W.statusBadge(node.querySelector(".session-status"), session.status);
    const caps = session.capabilities;
    // What the engine can do, said plainly: "Load older" reaches the phone only when yes.
    const older = caps ? `older history: ${caps.onDemandHistory ? "yes" : "no"}` : null;
    const meta = [`engine ${session.engine}`, session.jid ? session.jid.split("@")[0] : null,
      older, session.running ? null : "not running"].filter(Boolean);
    node.querySelector(".session-meta").textContent = meta.join(" · ");
    // Why it stopped stays on the card (a toast would take it away) until it runs again.
    const stopped = !session.running || STOPPED.has(session.status);
    const reason = session.error || (stopped && session.status !== "connected" ? session.statusReason : null);
    const error = node.querySelector(".session-error");
    error.textContent = reason ? `${STOPPED_TEXT[session.status] || "Stopped"}: ${reason}` : "";
    error.hidden = !reason;
    node.querySelector(".retry-pairing").hidden = !(stopped && session.status !== "pairing" && session.status !== "connected");
    const connected = session.status === "connected";
    node.querySelector(".sync").disabled = !connected || session.syncing;
    node.querySelector(".logout").hidden = !session.running;
    const pairing = node.querySelector(".pairing");
    pairing.hidden = session.status !== "pairing";
    if (session.status === "pairing") showQr(entry);
    if (session.syncing) node.querySelector(".progress").hidden = false;
    empty.hidden = cards.size > 0;
  }

  async function showQr(entry, fresh) {
    const pairing = entry.session && entry.session.pairing;
    const stamp = pairing ? pairing.updatedAt : 0;
    if (!fresh && stamp && stamp === entry.qrAt) return;
    entry.qrAt = stamp;
    const img = entry.node.querySelector(".qr");
    try {
      img.src = await W.blobUrl(`${path(entry.session.name)}/pairing/qr.png?scale=6`, { fresh: true });
      img.hidden = false;
    } catch (e) {
      img.hidden = true; // no code yet: the next session.status event brings one
    }
  }

  async function load() {
    const { items } = await W.api("/api/sessions");
    const names = new Set(items.map((s) => s.name));
    for (const [name, entry] of cards) {
      if (!names.has(name)) { entry.node.remove(); cards.delete(name); }
    }
    items.forEach(render);
    empty.hidden = items.length > 0;
  }

  async function refresh(name) {
    try {
      render(await W.api(path(name)));
    } catch (e) {
      if (e.status === 404 && cards.has(name)) { cards.get(name).node.remove(); cards.delete(name); }
    }
  }

  async function sync(name) {
    const entry = card(name);
    const button = entry.node.querySelector(".sync");
    const bar = entry.node.querySelector(".progress");
    button.disabled = true;
    bar.hidden = false;
    try {
      const result = await W.api(`${path(name)}/sync-chats?limitPerChat=50`, { method: "POST" });
      W.finishProgress(bar, `${result.chatsProcessed} chats, ${result.messagesSynced} messages`);
      W.toast(`${name}: ${result.message}`);
    } catch (e) {
      W.toast(`${name}: ${e.message}`, "error");
      bar.hidden = true;
    } finally {
      refresh(name);
    }
  }

  async function logout(name) {
    if (!confirm(`Log out "${name}"? The phone unlinks this device; the mirror stays.`)) return;
    try {
      render(await W.api(`${path(name)}/logout`, { method: "POST" }));
      W.toast(`${name} logged out`);
    } catch (e) {
      W.toast(e.message, "error");
    }
  }

  async function remove(name) {
    if (!confirm(`Delete "${name}" and everything mirrored from it? This cannot be undone.`)) return;
    try {
      await W.api(path(name), { method: "DELETE" });
      const entry = cards.get(name);
      if (entry) { entry.node.remove(); cards.delete(name); }
      empty.hidden = cards.size > 0;
      W.toast(`${name} deleted`);
    } catch (e) {
      W.toast(e.message, "error");
    }
  }

  async function retryPairing(name) {
    const button = card(name).node.querySelector(".retry-pairing");
    button.disabled = true;
    try {
      render(await W.api("/api/sessions", { method: "POST", body: { name } }));
    } catch (e) {
      W.toast(e.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  async function pairPhone(event, name) {
    event.preventDefault();
    const form = event.target;
    const out = card(name).node.querySelector(".pair-code");
    try {
      const { code } = await W.api(`${path(name)}/pairing/phone`, {
        method: "POST", body: { phone: form.phone.value },
      });
      out.textContent = `${code.slice(0, 4)}-${code.slice(4)}`;
      out.hidden = false;
    } catch (e) {
      W.toast(e.message, "error");
    }
  }

  document.getElementById("new-session").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("new-session-name");
    try {
      render(await W.api("/api/sessions", { method: "POST", body: { name: input.value.trim() } }));
      input.value = "";
    } catch (e) {
      W.toast(e.message, "error");
    }
  });

  W.requireLogin().then(() => {
    load().catch((e) => W.toast(e.message, "error"));
    W.onReconnect(() => load().catch(() => {})); // statuses may have changed meanwhile
    W.live([], {
      "session.status": (data, frame) => refresh(frame.session),
      sync_chats: (data) => {
        const entry = cards.get(data.sessionId);
        if (entry) W.setProgress(entry.node.querySelector(".progress"), data);
      },
    });
    // QR codes rotate; between events, look again now and then.
    setInterval(() => {
      for (const entry of cards.values()) {
        if (entry.session && entry.session.status === "pairing") refresh(entry.session.name);
      }
    }, 10000);
  }).catch(() => {});
})();
