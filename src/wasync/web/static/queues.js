// Queues dashboard: per job kind, counts by state, charts of the last hour (jobs
// finished per minute from the jobs table, queue depth from the server's sampler),
// the avatar pace against its limit, dead letters with Retry and Discard, and
// breakdowns per session and per node. Charts are SVG drawn here: no library, no CDN.
"use strict";

(function () {
  const grid = document.getElementById("queues");
  const STATES = ["queued", "running", "done", "failed"];
  const TITLES = {
    avatar: "Profile pictures", avatars: "Profile pictures", history: "History", "history.backfill": "History backfill",
    "history.gapscan": "Gap scan", "history.gapfill": "Gap fill",
    webhook: "Webhooks", webhooks: "Webhooks", discord: "Discord", nats: "NATS", rabbitmq: "RabbitMQ",
    redis: "Redis", stream: "Event stream pumps",
  };
  // Worker figures by name: a label and a unit (the raw names are internal).
  const FIGURES = {
    enabled: ["Enabled", "flag"],
    configuredRate: ["Limit", "requests/s"],
    currentRate: ["Pace", "requests/s"],
    interval: ["Average gap", "s"],
    minGap: ["Shortest gap", "s"],
    maxGap: ["Longest gap", "s"],
    pausedFor: ["Paused for", "s"],
    requests: ["Requests made", ""],
    none: ["Without a picture", "contacts"],
    endpoints: ["Endpoints", ""],
    recordingErrors: ["Events not recorded", "errors"],
    eventsWaiting: ["Waiting for their broker", "events"],
    published: ["Events published", "events"],
    deadLettered: ["Events dead-lettered", "events"],
    failedPublishes: ["Failed publishes", "tries"],
    outcomes: ["Outcomes", ""],
    error: ["Figures unavailable", "text"],
  };
  const SVG = "http://www.w3.org/2000/svg";

  function title(kind) {
    if (TITLES[kind]) return TITLES[kind];
    const words = kind.replace(/[._-]+/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function words(key) {
    return key.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/[_.]+/g, " ").toLowerCase();
  }

  function num(value, digits) {
    return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 2 : digits });
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // Jobs finished per minute: a stacked bar per minute, done below failed.
  function finishedChart(series, now) {
    const W_ = 360, H = 120, top = 10, bottom = 18, left = 30;
    const n = series.minutes.length;
    const max = Math.max(1, ...series.done.map((d, i) => d + series.failed[i]));
    const step = (W_ - left) / n;
    const scale = (H - top - bottom) / max;
    const chart = svg("svg", { viewBox: `0 0 ${W_} ${H}`, class: "chart finished-chart", role: "img",
      "aria-label": `Jobs finished per minute over the last hour, at most ${max} in a minute` });
    chart.append(
      svg("line", { x1: left, x2: W_, y1: H - bottom, y2: H - bottom, class: "axis" }),
      svg("line", { x1: left, x2: W_, y1: top, y2: top, class: "grid" }),
      svg("text", { x: left - 4, y: top + 4, class: "tick", "text-anchor": "end" }, document.createTextNode(num(max, 0))),
      svg("text", { x: left - 4, y: H - bottom + 4, class: "tick", "text-anchor": "end" }, document.createTextNode("0")));
    series.minutes.forEach((minute, i) => {
      const done = series.done[i], failed = series.failed[i];
      const x = left + i * step + 1;
      const g = svg("g", { class: "bar", "data-minute": minute, "data-done": done, "data-failed": failed });
      const hDone = done * scale, hFailed = failed * scale;
      g.append(svg("rect", { class: "done", x, width: Math.max(1, step - 2), y: H - bottom - hDone, height: hDone }));
      g.append(svg("rect", { class: "failed", x, width: Math.max(1, step - 2), y: H - bottom - hDone - hFailed, height: hFailed }));
      g.append(svg("title", {}, document.createTextNode(
        `${new Date(minute * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}: ${done} done, ${failed} failed`)));
      chart.append(g);
    });
    chart.append(
      svg("text", { x: left, y: H - 4, class: "tick" }, document.createTextNode(`−${n} min`)),
      svg("text", { x: left + (W_ - left) / 2, y: H - 4, class: "tick", "text-anchor": "middle" }, document.createTextNode(`−${n / 2} min`)),
      svg("text", { x: W_, y: H - 4, class: "tick", "text-anchor": "end" }, document.createTextNode("now")));
    return chart;
  }

  // Queue depth: queued and running jobs, one point per sample.
  function depthChart(series, now, interval) {
    const points = series.depth;
    if (!points.length) {
      return W.el("p", { class: "muted small chart-empty", text: interval
        ? `Depth is sampled every ${num(interval, 0)} s from when the server started: the first sample is on its way.`
        : "No depth samples on this server." });
    }
    const W_ = 360, H = 100, top = 10, bottom = 18, left = 30;
    const start = now - 3600;
    const max = Math.max(1, ...points.map((p) => Math.max(p.queued, p.running)));
    const x = (t) => left + ((t - start) / 3600) * (W_ - left);
    const y = (v) => H - bottom - (v / max) * (H - top - bottom);
    const line = (key) => points.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    const chart = svg("svg", { viewBox: `0 0 ${W_} ${H}`, class: "chart depth-chart", role: "img",
      "aria-label": `Queued and running jobs over the last hour, at most ${max}` },
    svg("line", { x1: left, x2: W_, y1: H - bottom, y2: H - bottom, class: "axis" }),
    svg("line", { x1: left, x2: W_, y1: top, y2: top, class: "grid" }),
    svg("text", { x: left - 4, y: top + 4, class: "tick", "text-anchor": "end" }, document.createTextNode(num(max, 0))),
    svg("text", { x: left - 4, y: H - bottom + 4, class: "tick", "text-anchor": "end" }, document.createTextNode("0")),
    svg("path", { d: line("queued"), class: "line queued", "data-last": points[points.length - 1].queued }),
    svg("path", { d: line("running"), class: "line running", "data-last": points[points.length - 1].running }),
    svg("text", { x: left, y: H - 4, class: "tick" }, document.createTextNode("−60 min")),
    svg("text", { x: W_, y: H - 4, class: "tick", "text-anchor": "end" }, document.createTextNode("now")));
    return chart;
  }

  function legend(items) {
    return W.el("div", { class: "legend small" }, ...items.map(([cls, label]) =>
      W.el("span", {}, W.el("i", { class: `swatch ${cls}` }), label)));
  }

  function stat(label, value, cls) {
    return W.el("div", { class: `stat ${cls || ""}` }, W.el("span", { class: "value", text: String(value) }), W.el("span", { class: "label", text: label }));
  }

  function figureValue(key, value) {
    const [, unit] = FIGURES[key] || [null, ""];
    if (unit === "flag" || typeof value === "boolean") return value ? "yes" : "no";
    if (unit === "text" || typeof value === "string") return String(value);
    if (typeof value === "number") return unit ? `${num(value, 3)} ${unit}` : num(value, 3);
    if (value && typeof value === "object") {
      return Object.entries(value).map(([k, v]) => `${words(k)} ${typeof v === "number" ? num(v) : v}`).join(" · ") || "none";
    }
    return String(value);
  }

  // The avatar pace: requests per second against the configured limit.
  function paceNode(stats) {
    const rate = stats.currentRate || 0, limit = stats.configuredRate || 0;
    const pct = limit ? Math.min(100, (rate / limit) * 100) : 0;
    const meter = W.el("div", { class: "meter", role: "meter", "aria-valuemin": "0", "aria-valuemax": String(limit), "aria-valuenow": String(rate) },
      W.el("div", { class: "meter-bar" }));
    meter.firstChild.style.width = `${pct}%`;
    return W.el("div", { class: "pace" },
      W.el("div", { class: "pace-text" }, W.el("strong", { text: `${num(rate, 3)} requests/s` }),
        W.el("span", { class: "muted", text: ` of ${num(limit, 3)} requests/s allowed` })),
      meter);
  }

  function figuresNode(stats) {
    const list = W.el("dl", { class: "figures" });
    for (const [key, value] of Object.entries(stats)) {
      if (key === "sessions" || key === "currentRate" || key === "configuredRate") continue;
      const label = (FIGURES[key] || [words(key)])[0];
      list.append(W.el("dt", { text: label }), W.el("dd", { text: figureValue(key, value) }));
    }
    return list;
  }

  // Per-session worker figures (the avatar pace of each session), as a table.
  function sessionFigures(sessions) {
    const rows = Object.entries(sessions).map(([name, s]) => W.el("tr", {},
      W.el("td", { text: name }),
      W.el("td", { class: "num", text: `${num(s.currentRate || 0, 3)} / ${num(s.configuredRate || 0, 3)}` }),
      W.el("td", { class: "num", text: s.pausedFor ? `${num(s.pausedFor, 1)} s` : "—" }),
      W.el("td", { class: "num", text: num(s.requests || 0, 0) })));
    return W.el("div", { class: "table-wrap" }, W.el("table", { class: "mini" },
      W.el("thead", {}, W.el("tr", {}, W.el("th", { text: "Session" }), W.el("th", { class: "num", text: "Pace / limit (req/s)" }),
        W.el("th", { class: "num", text: "Paused" }), W.el("th", { class: "num", text: "Requests" }))),
      W.el("tbody", {}, ...rows)));
  }

  // Dead letters: each one's key and when, its error in full below, then the actions.
  function deadLetters(q) {
    const items = q.deadLetters.map((d) => W.el("li", { class: "dead", dataset: { job: String(d.id) } },
      W.el("div", { class: "dead-head" },
        W.el("span", { class: "dead-key", text: d.key || `job ${d.id}` }),
        W.el("span", { class: "muted small nowrap", text: `${d.attempts} ${d.attempts === 1 ? "try" : "tries"} · failed ${W.shortTime(d.failedAt)}` })),
      W.el("p", { class: "error-text small", text: d.error || "(no error recorded)" }),
      W.el("div", { class: "dead-actions" },
        W.el("button", { type: "button", class: "secondary small retry", onclick: () => act(d.id, "retry"), text: "Retry" }),
        W.el("button", { type: "button", class: "ghost small danger discard", onclick: () => act(d.id, "discard"), text: "Discard" }))));
    return W.el("details", { class: "errors dead-letters", open: true },
      W.el("summary", { text: `Dead letters (${q.deadLetters.length})` }),
      W.el("ul", { class: "dead-list" }, ...items));
  }

  function queueCard(q, now, interval) {
    const total = STATES.reduce((n, s) => n + (q.counts[s] || 0), 0);
    const card = W.el("article", { class: "card queue-card", dataset: { kind: q.kind } },
      W.el("header", { class: "queue-head" },
        W.el("h2", { text: title(q.kind) }),
        W.el("span", { class: "muted small", text: `${num(total, 0)} job${total === 1 ? "" : "s"}` })),
      W.el("div", { class: "stats" }, ...STATES.map((s) => stat(s, num(q.counts[s] || 0, 0), `state-${s}`))),
      W.el("p", { class: "small muted rate", text:
        `Last 5 minutes: ${num(q.donePerMinute)} done/min · ${num(q.failedPerMinute)} failed/min` }));
    const quiet = total === 0 && (!q.series || q.series.depth.every((p) => !p.queued && !p.running));
    if (quiet) {
      card.classList.add("quiet");
      card.querySelector(".stats").remove();
      card.querySelector(".rate").textContent = "No jobs in the last hour.";
    }
    if (q.series && !quiet) {
      card.append(W.el("div", { class: "chart-box" },
        W.el("h3", { text: "Jobs finished per minute, last hour" }), finishedChart(q.series, now),
        legend([["done", "done"], ["failed", "failed"]])));
      card.append(W.el("div", { class: "chart-box" },
        W.el("h3", { text: "Queue depth, last hour" }), depthChart(q.series, now, interval),
        q.series.depth.length ? legend([["queued", "queued"], ["running", "running"]]) : null));
    }
    const stats = q.stats || {};
    if ("configuredRate" in stats) card.append(paceNode(stats));
    if (Object.keys(stats).some((k) => !["sessions", "currentRate", "configuredRate"].includes(k))) card.append(figuresNode(stats));
    if (stats.sessions && Object.keys(stats.sessions).length) card.append(sessionFigures(stats.sessions));
    if (q.deadLetters && q.deadLetters.length) card.append(deadLetters(q));
    return card;
  }

  function sessionsTable(data) {
    const box = document.getElementById("queue-sessions");
    // Only the kinds some session has jobs of: the table stays narrow.
    const kinds = [...new Set(data.sessions.flatMap((s) => Object.keys(s.counts)))].sort();
    box.hidden = !data.sessions.length;
    box.querySelector("thead").replaceChildren(W.el("tr", {}, W.el("th", { text: "Session" }),
      ...kinds.map((k) => W.el("th", { text: title(k) }))));
    box.querySelector("tbody").replaceChildren(...data.sessions.map((s) => W.el("tr", { dataset: { session: s.session || "" } },
      W.el("td", { text: s.session || "(no session)" }),
      ...kinds.map((k) => {
        const c = s.counts[k];
        if (!c) return W.el("td", { class: "muted", text: "—" });
        const parts = STATES.filter((st) => c[st]).map((st) => `${num(c[st], 0)} ${st}`);
        return W.el("td", { text: parts.join(" · ") || "—" });
      }))));
  }

  function nodesTable(nodes) {
    const box = document.getElementById("queue-nodes");
    box.hidden = !nodes || !nodes.length;
    if (!nodes) return;
    box.querySelector("tbody").replaceChildren(...nodes.map((n) => W.el("tr", {},
      W.el("td", { class: "nowrap", text: n.node }),
      W.el("td", { text: n.sessions.join(", ") || "—" }),
      W.el("td", { text: Object.entries(n.jobsProcessed).map(([k, v]) => `${title(k)} ${num(v, 0)}`).join(" · ") || "—" }),
      W.el("td", { class: "num", text: n.eventsCommitted == null ? "—" : num(n.eventsCommitted, 0) }))));
  }

  async function act(id, what) {
    try {
      if (what === "retry") {
        await W.api(`/api/queues/jobs/${id}/retry`, { method: "POST" });
        W.toast(`Job ${id} queued again`);
      } else {
        await W.api(`/api/queues/jobs/${id}`, { method: "DELETE" });
        W.toast(`Job ${id} discarded`);
      }
      load();
    } catch (e) {
      W.toast(e.message, "error");
    }
  }

  async function load() {
    try {
      const data = await W.api("/api/queues");
      grid.dataset.generatedAt = String(data.generatedAt); // which answer the page shows
      // Busy queues first: a kind without jobs is a short card at the end.
      const total = (q) => STATES.reduce((n, s) => n + (q.counts[s] || 0), 0);
      const queues = [...data.queues].sort((a, b) => (total(b) > 0) - (total(a) > 0) || a.kind.localeCompare(b.kind));
      grid.replaceChildren(...queues.map((q) => queueCard(q, data.generatedAt, data.depthInterval)));
      sessionsTable(data);
      nodesTable(data.nodes);
      document.getElementById("queues-empty").hidden = data.queues.length > 0;
      document.getElementById("queues-updated").textContent = `Updated ${new Date(data.generatedAt * 1000).toLocaleTimeString()}`;
    } catch (e) {
      if (!(e instanceof W.ApiError)) throw e; // a bug: let it be seen
      if (e.status) W.toast(e.message, "error");
    }
  }

  W.requireLogin().then(() => {
    load();
    setInterval(load, 5000);
  }).catch(() => {});
})();
