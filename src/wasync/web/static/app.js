// Shared helpers of the wasync UI: the API key, API calls, live events, small DOM tools.
// Plain browser JavaScript, no build step and no CDN.
"use strict";

(function () {
  const KEY = "wasync.apiKey";
  const AUTH_OFF = "wasync.authOff";

  class ApiError extends Error {
    constructor(status, error, detail) {
      super(typeof detail === "string" ? detail : error || `HTTP ${status}`);
      this.status = status;
      this.error = error;
      this.detail = detail;
    }
  }

  function apiKey() {
    return sessionStorage.getItem(KEY);
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const key = apiKey();
    if (key) h["X-Api-Key"] = key;
    return h;
  }

  function toLogin() {
    const next = location.pathname + location.search;
    location.assign(`/ui/login?next=${encodeURIComponent(next)}`);
  }

  // The server unreachable: a banner, badges that say so, and a check every few
  // seconds until it answers again (then the page's `W.onReconnect` handlers run).
  const reconnectHandlers = [];
  let offline = false;
  let probe = null;
  function setOffline(value) {
    if (value === offline) return;
    offline = value;
    document.body.classList.toggle("offline", offline);
    const banner = document.getElementById("offline-banner");
    if (banner) banner.hidden = !offline;
    document.querySelectorAll("[data-real-status]").forEach((n) => statusBadge(n, n.dataset.realStatus));
    const dot = document.getElementById("live-dot");
    if (dot && offline) { dot.dataset.state = "off"; dot.title = "Server unreachable"; }
    if (offline && !probe) {
      probe = setInterval(async () => {
        if (await reachable()) {
          clearInterval(probe);
          probe = null;
          setOffline(false);
          reconnectHandlers.forEach((fn) => fn());
        }
      }, 2000);
    }
  }
  async function reachable() {
    try {
      const r = await fetch("/health", { cache: "no-store" });
      return r.status < 500;
    } catch (e) {
      return false;
    }
  }
  function onReconnect(fn) { reconnectHandlers.push(fn); }

  async function api(path, options) {
    const opts = Object.assign({ method: "GET" }, options || {});
    const init = { method: opts.method, headers: headers(opts.headers) };
    if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      setOffline(true);
      throw new ApiError(0, "unreachable", "The server is unreachable.");
    }
    setOffline(false);
    if (response.status === 401 && !opts.noRedirect) {
      sessionStorage.removeItem(KEY);
      toLogin();
      throw new ApiError(401, "unauthorized", "sign in again");
    }
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const err = data && typeof data === "object" ? data : {};
      throw new ApiError(response.status, err.error, err.detail || String(data).slice(0, 200));
    }
    return data;
  }

  // Authenticated binary resources (avatars, media, QR codes) become blob: URLs.
  const blobs = new Map();
  async function blobUrl(path, { fresh = false } = {}) {
    if (!fresh && blobs.has(path)) return blobs.get(path);
    const response = await fetch(path, { headers: headers() });
    if (!response.ok) throw new ApiError(response.status, "fetch_failed", `HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    const old = blobs.get(path);
    if (old) URL.revokeObjectURL(old);
    blobs.set(path, url);
    return url;
  }

  // Live events over /ws; reconnects with back-off. handlers: {event: fn(data, frame)}.
  function live(sessions, handlers) {
    let socket = null;
    let delay = 500;
    let stopped = false;
    const dot = document.getElementById("live-dot");
    const mark = (state, title) => {
      if (!dot) return;
      dot.dataset.state = state;
      dot.title = `Live events: ${title}`;
    };
    function connect() {
      const query = sessions.map((s) => `session=${encodeURIComponent(s)}`).join("&");
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/ws${query ? "?" + query : ""}`);
      mark("connecting", "connecting");
      socket.onopen = () => socket.send(JSON.stringify({ apiKey: apiKey() || "" }));
      socket.onmessage = (msg) => {
        let frame;
        try {
          frame = JSON.parse(msg.data);
        } catch (e) {
          return;
        }
        if (frame.event === "ready") {
          delay = 500;
          mark("on", "connected");
        }
        const fn = handlers[frame.event] || handlers["*"];
        if (fn) fn(frame.data, frame);
      };
      socket.onclose = (ev) => {
        mark("off", "disconnected, retrying");
        if (stopped) return;
        // A closed socket is the first sign of a stopped server: ask whether it answers.
        reachable().then((up) => { if (!up) setOffline(true); });
        if (ev.code === 4401) return toLogin();
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    connect();
    return { close: () => { stopped = true; if (socket) socket.close(); } };
  }

  // DOM helpers.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function toast(message, kind) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.dataset.kind = kind || "info";
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 5000);
  }

  function initials(name) {
    const words = String(name || "?").replace(/[^\p{L}\p{N} ]/gu, " ").trim().split(/\s+/);
    const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?").slice(0, 2);
    return letters.toUpperCase() || "?";
  }

  function hue(text) {
    let h = 0;
    for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  // An avatar: the stored picture when there is one, otherwise coloured initials.
  function avatar(node, name, jid, picture, version) {
    node.classList.add("avatar");
    node.textContent = initials(name);
    node.style.setProperty("--hue", hue(jid || name));
    node.dataset.avatar = "initials";
    if (picture && picture !== "none" && picture.startsWith("/")) {
      // The file keeps its name when the picture changes: its timestamp tells them apart.
      const src = version ? `${picture}?v=${version}` : picture;
      blobUrl(src).then((url) => {
        node.textContent = "";
        node.append(el("img", { src: url, alt: "" }));
        node.dataset.avatar = "picture";
      }).catch(() => {});
    }
    return node;
  }

  const sameDay = (a, b) => a.toDateString() === b.toDateString();
  function shortTime(ts) {
    if (!ts) return "";
    const d = new Date(ts * 1000);
    const now = new Date();
    if (sameDay(d, now)) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (now - d < 6 * 86400000) return d.toLocaleDateString([], { weekday: "short" });
    return d.toLocaleDateString([], { year: "2-digit", month: "2-digit", day: "2-digit" });
  }
  function longTime(ts) {
    return ts ? new Date(ts * 1000).toLocaleString() : "";
  }
  // The time of day on a bubble: 14:05.
  function clock(ts) {
    return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  // A day separator: Today, Yesterday, a weekday this week, else the date.
  function dayLabel(d) {
    const now = new Date();
    const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
    if (sameDay(d, now)) return "Today";
    if (sameDay(d, yesterday)) return "Yesterday";
    if (now - d < 6 * 86400000 && d < now) return d.toLocaleDateString([], { weekday: "long" });
    const year = d.getFullYear() === now.getFullYear() ? undefined : "numeric";
    return d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "long", year });
  }

  function setProgress(box, payload) {
    const n = payload.nChats || 0;
    const current = payload.currentChat || 0;
    const pct = n ? Math.min(100, Math.round((current / n) * 100)) : 100;
    box.hidden = false;
    box.setAttribute("aria-valuenow", String(pct));
    box.querySelector(".progress-bar").style.width = `${pct}%`;
    box.querySelector(".progress-label").textContent =
      current === 0 ? `Syncing ${n} chats…` : `Chat ${current} of ${n}`;
    clearTimeout(box.hideTimer);
    // The last chat sends two events (saved, then its messages saved): the sync is
    // over at the second one. Returns whether it is.
    const done = n > 0 && current >= n && box.lastChat === current;
    box.lastChat = current;
    if (done) finishProgress(box);
    return done;
  }
  function finishProgress(box, label) {
    box.setAttribute("aria-valuenow", "100");
    box.querySelector(".progress-bar").style.width = "100%";
    box.querySelector(".progress-label").textContent = label || "Sync complete";
    clearTimeout(box.hideTimer);
    box.hideTimer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  const STATUS_TEXT = {
    connected: "Connected", disconnected: "Disconnected", connecting: "Connecting",
    pairing: "Waiting for pairing", logged_out: "Logged out", banned: "Banned", replaced: "Replaced",
  };
  // A badge shows what the server last said, unless the server cannot be reached:
  // then no status is known, and it says so.
  function statusBadge(node, status) {
    node.dataset.realStatus = status || "unknown";
    const shown = offline ? "unreachable" : status || "unknown";
    node.textContent = offline ? "Server unreachable" : STATUS_TEXT[status] || status || "unknown";
    node.dataset.status = shown;
  }

  // The page's subject does not exist (an unknown session): say so instead of an
  // empty page that looks as if it worked.
  function notFound(message) {
    document.title = "Not found · wasync";
    const main = document.getElementById("main");
    main.className = "page-not_found";
    main.replaceChildren(el("section", { class: "card not-found", id: "not-found" },
      el("h1", { text: "Not found" }),
      el("p", { class: "muted", text: message }),
      el("p", {}, el("a", { class: "button primary", href: "/ui/sessions", text: "Go to sessions" }))));
  }

  async function signOut() {
    sessionStorage.removeItem(KEY);
    location.assign("/ui/login");
  }

  async function requireLogin() {
    if (apiKey() || sessionStorage.getItem(AUTH_OFF)) return;
    try {
      const health = await (await fetch("/health")).json();
      if (health.auth === false) {
        sessionStorage.setItem(AUTH_OFF, "1");
        return;
      }
    } catch (e) { /* fall through to the login page */ }
    toLogin();
    throw new Error("not signed in");
  }

  const button = document.getElementById("sign-out");
  if (button) button.addEventListener("click", signOut);

  window.W = {
    KEY, ApiError, api, apiKey, avatar, blobUrl, clock, dayLabel, el, finishProgress, hue, initials,
    live, longTime, notFound, onReconnect, requireLogin, setProgress, shortTime, statusBadge, toast,
  };
})();
