// Queues dashboard: per job kind, counts by state, rates, worker figures, recent errors.
"use strict";

(function () {
  const grid = document.getElementById("queues");
  const STATES = ["queued", "running", "done", "failed"];
  const TITLES = {
    avatar: "Avatars", avatars: "Avatars", history: "History", "history.backfill": "History backfill",
    webhook: "Webhooks", webhooks: "Webhooks", discord: "Discord",
  };

  function title(kind) {
    if (TITLES[kind]) return TITLES[kind];
    const words = kind.replace(/[._-]+/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  // A worker's figures: numbers, flags, and (one level of) nested groups such as per session.
  function figures(stats, nested) {
    const list = W.el("dl", { class: nested ? "figures nested" : "figures" });
    for (const [key, value] of Object.entries(stats)) {
      let shown;
      if (typeof value === "number") shown = value.toLocaleString(undefined, { maximumFractionDigits: 3 });
      else if (value && typeof value === "object" && !Array.isArray(value)) shown = figures(value, true);
      else shown = Array.isArray(value) ? value.join(", ") : String(value);
      list.append(W.el("dt", { text: key }), W.el("dd", {}, shown));
    }
    return list;
  }

  function stat(label, value, cls) {
    return W.el("div", { class: `stat ${cls || ""}` }, W.el("span", { class: "value", text: String(value) }), W.el("span", { class: "label", text: label }));
  }

  function queueCard(q) {
    const total = STATES.reduce((n, s) => n + (q.counts[s] || 0), 0);
    const card = W.el("article", { class: "card queue-card", dataset: { kind: q.kind } },
      W.el("header", { class: "queue-head" },
        W.el("h2", { text: title(q.kind) }),
        W.el("span", { class: "muted small", text: `${total} job${total === 1 ? "" : "s"}` })),
      W.el("div", { class: "stats" }, ...STATES.map((s) => stat(s, q.counts[s] || 0, `state-${s}`))),
      W.el("p", { class: "small muted rate", text: `${q.donePerMinute} done/min · ${q.failedPerMinute} failed/min (last 5 min)` }));
    const extra = Object.entries(q.stats || {});
    if (extra.length) {
      card.append(figures(q.stats, false));
    }
    if (q.recentErrors.length) {
      const rows = q.recentErrors.map((e) => W.el("tr", {},
        W.el("td", { text: e.key || `#${e.id}` }),
        W.el("td", { class: "error-text", text: e.error }),
        W.el("td", { class: "nowrap", text: `${e.state} · ${e.attempts}×` }),
        W.el("td", {}, e.state === "failed" ? W.el("button", { type: "button", class: "ghost small", onclick: () => retry(e.id), text: "Retry" }) : "")));
      card.append(W.el("details", { class: "errors", open: true },
        W.el("summary", { text: `Recent errors (${q.recentErrors.length})` }),
        W.el("div", { class: "table-wrap" }, W.el("table", {}, W.el("tbody", {}, ...rows)))));
    }
    return card;
  }

  async function retry(id) {
    try {
      await W.api(`/api/queues/jobs/${id}/retry`, { method: "POST" });
      W.toast(`Job ${id} queued again`);
      load();
    } catch (e) {
      W.toast(e.message, "error");
    }
  }

  async function load() {
    try {
      const data = await W.api("/api/queues");
      grid.replaceChildren(...data.queues.map(queueCard));
      document.getElementById("queues-empty").hidden = data.queues.length > 0;
      document.getElementById("queues-updated").textContent = `Updated ${new Date(data.generatedAt * 1000).toLocaleTimeString()}`;
    } catch (e) {
      W.toast(e.message, "error");
    }
  }

  W.requireLogin().then(() => {
    load();
    setInterval(load, 5000);
  }).catch(() => {});
})();
