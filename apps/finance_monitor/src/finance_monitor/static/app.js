// Dashboard: live charts per topic from server-sent events, and the alert list.
// All user/document text is inserted with textContent (never innerHTML).
"use strict";

const MAX_POINTS = 60;
const series = new Map(); // series key -> [{start, negative_share, count}]
const alertKeys = new Set();

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function chartFor(key) {
  let box = document.querySelector(`[data-series="${CSS.escape(key)}"]`);
  if (!box) {
    box = el("div", "chart");
    box.dataset.series = key;
    const title = el("h3");
    title.append(el("span", "name", key.slice(key.indexOf(":") + 1)), el("span", "last muted", ""));
    const canvas = el("canvas");
    canvas.width = 300;
    canvas.height = 90;
    box.append(title, canvas);
    document.getElementById("charts").append(box);
    document.getElementById("no-data").hidden = true;
  }
  return box;
}

function draw(key) {
  const points = series.get(key) || [];
  const box = chartFor(key);
  const canvas = box.querySelector("canvas");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#dfe6ee";
  ctx.beginPath(); ctx.moveTo(0, h / 2); ctx.lineTo(w, h / 2); ctx.stroke();
  if (!points.length) return;
  const step = points.length > 1 ? w / (points.length - 1) : w;
  ctx.strokeStyle = "#c0392b";
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((p, i) => {
    const x = i * step, y = h - p.negative_share * (h - 4) - 2;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  const last = points[points.length - 1];
  box.querySelector(".last").textContent = `${Math.round(last.negative_share * 100)}% neg · ${last.count} msgs`;
}

function addPoints(points) {
  const touched = new Set();
  for (const p of points) {
    if (!p.series.startsWith("topic:")) continue;
    const list = series.get(p.series) || [];
    const i = list.findIndex((q) => q.start === p.start);
    if (i >= 0) list[i] = p; else list.push(p);
    list.sort((a, b) => a.start - b.start);
    while (list.length > MAX_POINTS) list.shift();
    series.set(p.series, list);
    touched.add(p.series);
  }
  touched.forEach(draw);
}

function addAlerts(alerts) {
  const list = document.getElementById("alerts");
  for (const a of alerts) {
    if (alertKeys.has(a.key)) continue;
    alertKeys.add(a.key);
    const item = el("li", a.severity);
    item.dataset.key = a.key;
    item.dataset.series = a.series;
    item.append(el("div", "summary", a.summary));
    const when = new Date(a.window_start * 1000).toISOString().replace("T", " ").slice(0, 19);
    item.append(el("div", "meta", `${a.rule_id} · ${a.series} · window ${when} UTC · ${a.status}` +
      (a.dispatch_state === "silenced" ? " · silenced" : "")));
    list.prepend(item);
    const box = document.querySelector(`[data-series="${CSS.escape(a.series)}"]`);
    if (box) box.classList.add("alerting");
  }
  document.getElementById("alert-count").textContent = String(alertKeys.size);
}

function connect() {
  const conn = document.getElementById("conn");
  const source = new EventSource("/api/stream");
  source.onopen = () => { conn.textContent = "live"; };
  source.onerror = () => { conn.textContent = "reconnecting…"; };
  source.addEventListener("trend", (e) => addPoints(JSON.parse(e.data)));
  source.addEventListener("alerts", (e) => addAlerts(JSON.parse(e.data)));
}

document.getElementById("score-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = document.getElementById("score-result");
  const text = document.getElementById("score-text").value;
  out.textContent = "scoring…";
  try {
    const response = await fetch("/api/score", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ texts: [text] }),
    });
    const body = await response.json();
    if (!response.ok) { out.textContent = `error ${response.status}: ${JSON.stringify(body.detail)}`; return; }
    const r = body.results[0];
    out.textContent = `${r.topic} (${Math.round(r.topic_confidence * 100)}%) · ${r.sentiment}` +
      (r.tickers.length ? ` · ${r.tickers.join(", ")}` : "");
  } catch (err) {
    out.textContent = `error: ${err}`;
  }
});

connect();
