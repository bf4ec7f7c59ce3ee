// The mercat market dashboard: polls the node's /market/* JSON endpoints and follows its
// event stream. Plain DOM (textContent only: nothing from the network becomes markup) and
// hand-drawn SVG; no library, nothing fetched from anywhere but this node.
"use strict";

const POLL_MS = 2000;
// /market/providers answers a page at a time (the node's largest by default); a market with
// more providers than these pages hold is shown in part, and the page says so, rather than
// one refresh costing the node an unbounded number of requests.
const PROVIDER_PAGES = 10;
const SVG = "http://www.w3.org/2000/svg";
let unit = 1000000;

function $(id) { return document.getElementById(id); }

async function getJSON(path) {
  const reply = await fetch(path, { headers: { accept: "application/json" } });
  if (!reply.ok) throw new Error(path + ": " + reply.status);
  return reply.json();
}

function tokens(base) {
  if (base === null || base === undefined) return "–";
  return (base / unit).toLocaleString(undefined, { maximumFractionDigits: 3 });
}

function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    return value.toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 3 : digits });
  }
  return String(value);
}

function short(key) { return key ? key.slice(0, 10) + "…" : "–"; }

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fill(tableId, rows, build) {
  const body = $(tableId).querySelector("tbody");
  const fresh = document.createElement("tbody");
  for (const item of rows) build(fresh, item);
  body.replaceWith(fresh);
}

function pairs(map) {
  return Object.entries(map || {}).map(([k, v]) => k + " " + v).join(", ") || "–";
}

// --- charts ---------------------------------------------------------------------------------

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function frame(svg, rounds, top) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const box = { left: 48, right: 590, top: 12, bottom: 190 };
  for (let i = 0; i <= 4; i++) {
    const y = box.bottom - (box.bottom - box.top) * i / 4;
    el("line", { x1: box.left, x2: box.right, y1: y, y2: y, class: "grid" }, svg);
    el("text", { x: box.left - 6, y: y + 4, "text-anchor": "end" }, svg).textContent = fmt(top * i / 4, 2);
  }
  el("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom, class: "axis" }, svg);
  const n = Math.max(rounds.length, 1);
  const step = (box.right - box.left) / n;
  rounds.forEach((r, i) => {
    if (n <= 20 || i % Math.ceil(n / 20) === 0) {
      el("text", { x: box.left + step * (i + 0.5), y: box.bottom + 14, "text-anchor": "middle" }, svg).textContent = r.round;
    }
  });
  return { box, step, y: (v) => box.bottom - (box.bottom - box.top) * (top ? v / top : 0) };
}

function drawPrices(rounds) {
  const svg = $("chart-prices");
  const prices = rounds.map((r) => r.mean_price || 0);
  const counts = rounds.map((r) => (r.paid || 0) + (r.failed || 0));
  const top = Math.max(1e-9, ...prices, ...counts.map((c) => c / 4)) * 1.1;
  const f = frame(svg, rounds, top);
  rounds.forEach((r, i) => {
    const x = f.box.left + f.step * i + f.step * 0.2;
    const w = f.step * 0.6;
    const paid = (r.paid || 0) / 4, failed = (r.failed || 0) / 4;
    el("rect", { x, width: w, y: f.y(paid), height: f.box.bottom - f.y(paid), fill: "var(--paid)", opacity: 0.45 }, svg);
    el("rect", { x, width: w, y: f.y(paid + failed), height: f.y(paid) - f.y(paid + failed), fill: "var(--failed)", opacity: 0.45 }, svg);
  });
  const points = rounds.map((r, i) => [f.box.left + f.step * (i + 0.5), f.y(r.mean_price || 0)]);
  if (points.length) {
    el("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: "var(--price)", "stroke-width": 2 }, svg);
    for (const [x, y] of points) el("circle", { cx: x, cy: y, r: 2.5, fill: "var(--price)" }, svg);
  }
  el("text", { x: 596, y: 24, "text-anchor": "end" }, svg).textContent = "bars: tasks ÷ 4";
}

function drawFlows(rounds) {
  const svg = $("chart-flows");
  const keys = ["charged", "payouts", "rewards", "penalties"];
  const top = Math.max(1e-9, ...rounds.flatMap((r) => keys.map((k) => (r[k] || 0) / unit))) * 1.1;
  const f = frame(svg, rounds, top);
  rounds.forEach((r, i) => {
    const w = f.step * 0.8 / keys.length;
    keys.forEach((k, j) => {
      const v = (r[k] || 0) / unit;
      el("rect", { x: f.box.left + f.step * i + f.step * 0.1 + w * j, width: w, y: f.y(v), height: f.box.bottom - f.y(v), fill: "var(--" + k + ")" }, svg);
    });
  });
}

// --- panels ---------------------------------------------------------------------------------

function showSummary(s) {
  unit = s.unit || unit;
  $("round").textContent = s.round;
  $("loop-state").textContent = s.loop ? s.loop.state : "none";
  $("card-rounds").textContent = fmt(s.rounds);
  $("card-tasks").textContent = fmt(s.tasks.settled) + " / " + fmt(s.tasks.open);
  $("card-sla").textContent = s.sla_compliance === null ? "–" : (100 * s.sla_compliance).toFixed(1) + " %";
  $("card-pool").textContent = tokens(s.pool);
  $("card-assets").textContent = fmt(s.assets.active || 0) + " / " + fmt(s.assets.removed || 0);
}

function showRounds(rounds) {
  const ordered = rounds.slice().reverse();
  const priced = rounds.find((r) => r.mean_price !== null && r.mean_price !== undefined);
  $("card-price").textContent = priced ? fmt(priced.mean_price, 4) : "–";
  drawPrices(ordered);
  drawFlows(ordered);
  fill("rounds", rounds, (body, r) => {
    const row = body.insertRow();
    cell(row, r.round, "num");
    cell(row, r.phase);
    cell(row, fmt(r.requests), "num");
    cell(row, fmt(r.servers), "num");
    cell(row, fmt(r.tasks), "num");
    cell(row, fmt(r.paid), "num");
    cell(row, fmt(r.failed), "num");
    cell(row, fmt(r.welfare), "num");
    cell(row, fmt(r.mean_price, 4), "num");
    cell(row, tokens(r.charged), "num");
    cell(row, tokens(r.pool), "num");
    cell(row, (r.removed || []).join(", ") || "–");
    cell(row, r.timings ? fmt(r.timings.total, 2) : "–", "num");
  });
}

// Every provider, a page at a time after the last asset of the page before, up to
// PROVIDER_PAGES pages: {providers, more}, `more` when the node may list more than that.
async function allProviders() {
  const providers = [];
  let after = null;
  for (let pages = 0; pages < PROVIDER_PAGES; pages++) {
    const page = await getJSON("/market/providers" + (after === null ? "" : "?after=" + encodeURIComponent(after)));
    if (!page.length) return { providers, more: false };
    providers.push(...page);
    after = page[page.length - 1].asset;
  }
  return { providers, more: true };
}

function showProviders({ providers, more }) {
  const note = $("providers-more");
  note.hidden = !more;
  note.textContent = more ? "Showing the first " + providers.length + " providers; the node lists more (GET /market/providers?after=" + providers[providers.length - 1].asset + ")." : "";
  fill("providers", providers, (body, p) => {
    const row = body.insertRow();
    if (p.status !== "active") row.className = "removed";
    cell(row, p.asset);
    cell(row, p.kind || "–");
    cell(row, short(p.owner));
    const status = cell(row, "");
    const badge = document.createElement("span");
    badge.className = "badge " + p.status;
    badge.textContent = p.status;
    status.appendChild(badge);
    cell(row, tokens(p.stake), "num");
    cell(row, fmt(p.settled), "num");
    cell(row, fmt(p.failed), "num");
    cell(row, p.failure_rate === null ? "–" : (100 * p.failure_rate).toFixed(1) + " %", "num");
  });
}

function showBook(book) {
  fill("book-requests", book.requests, (body, r) => {
    const t = r.terms || {};
    const row = body.insertRow();
    cell(row, r.request);
    // a sealed request's inputs and output are ciphertext to everyone but its providers
    const sealed = Array.isArray(t.sealed) && t.sealed.length ? " (sealed: " + t.sealed.join(", ") + ")" : "";
    cell(row, (t.workload || "–") + sealed);
    cell(row, tokens(t.max_price), "num");
    cell(row, pairs(t.demand));
    cell(row, fmt(t.replicas), "num");
    cell(row, t.deadline_ms ? (t.deadline_ms / 1000).toFixed(1) + " s" : "–", "num");
    cell(row, t.expires > 1e15 ? "never" : fmt(t.expires), "num");
  });
  fill("book-offers", book.offers, (body, o) => {
    const row = body.insertRow();
    cell(row, o.asset);
    cell(row, o.offer.kind);
    cell(row, pairs(o.offer.capacity));
    cell(row, tokens(o.offer.cost), "num");
    const costs = {};
    for (const [k, v] of Object.entries(o.offer.unit_costs || {})) costs[k] = tokens(v);
    cell(row, pairs(costs));
    cell(row, tokens(o.stake), "num");
  });
}

async function refresh() {
  try {
    const [summary, rounds, providers, book, info] = await Promise.all([
      getJSON("/market/summary"), getJSON("/market/rounds?limit=40"),
      allProviders(), getJSON("/market/book?limit=50"), getJSON("/market/info"),
    ]);
    $("ledger-id").textContent = info.ledger_id.slice(0, 12) + "…";
    showSummary(summary);
    showRounds(rounds);
    showProviders(providers);
    showBook(book);
    document.body.dataset.updated = String(Date.now());
  } catch (error) {
    $("loop-state").textContent = "unreachable";
  }
}

// --- the event stream -----------------------------------------------------------------------

function describe(e) {
  const bits = [e.kind, "r" + (e.round === undefined ? "?" : e.round)];
  for (const key of ["task", "asset", "request", "served", "paid", "success", "tasks", "removed", "status"]) {
    if (e[key] !== undefined && e[key] !== null) bits.push(key + "=" + (typeof e[key] === "object" ? JSON.stringify(e[key]) : e[key]));
  }
  return bits.join(" ");
}

function follow() {
  if (!window.EventSource) return;
  const list = $("events");
  const source = new EventSource("/market/events");
  source.onopen = () => { $("live").className = "live on"; $("live").textContent = "live"; };
  source.onerror = () => { $("live").className = "live off"; $("live").textContent = "reconnecting"; };
  source.onmessage = null;
  const show = (message) => {
    const e = JSON.parse(message.data);
    const item = document.createElement("li");
    item.textContent = describe(e);
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 80) list.removeChild(list.lastChild);
    document.body.dataset.events = String(e.id);
  };
  for (const kind of ["round_started", "round_opened", "cleared", "task_opened", "claim_received",
    "report_received", "task_executed", "task_attested", "task_settled", "asset_removed",
    "round_closed", "round_resumed", "round_rolled_back"]) {
    source.addEventListener(kind, show);
  }
}

refresh();
setInterval(refresh, POLL_MS);
follow();
