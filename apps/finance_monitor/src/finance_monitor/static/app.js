// Dashboard: live charts per topic from server-sent events, and the alert list.
// All user/document text is inserted with textContent (never innerHTML).
"use strict";

const MAX_POINTS = 60;
const series = new Map(); // series key -> [{start, negative_share, count}]
const alertKeys = new Set();

const LANG_LABEL = { zh: "中文", en: "EN" };
const HTML_LANG = { zh: "zh-CN", en: "en" };
const HAN = /[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]/g;
const LATIN_WORD = /[A-Za-z]+/g;

// The server's rule (keel.text): Han characters vs Latin words, >= 20% Han is Chinese
// (mixed text goes to the Chinese heads too). Used for evidence, which has no language.
function textLang(text) {
  const han = (text.match(HAN) || []).length, words = (text.match(LATIN_WORD) || []).length;
  return han && han / (han + words) > 0.2 ? "zh" : "en";
}

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
    item.title = "Open the alert";
    item.addEventListener("click", () => { window.location.hash = `alert=${encodeURIComponent(a.key)}`; });
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
    out.textContent = `${LANG_LABEL[r.lang] || r.lang} · ${r.topic} (${Math.round(r.topic_confidence * 100)}%) · ${r.sentiment}` +
      (r.tickers.length ? ` · ${r.tickers.join(", ")}` : "");
  } catch (err) {
    out.textContent = `error: ${err}`;
  }
});

// ---- alert drill-down: headlines, the series around the window, silence / acknowledge ----
const KEY_STORE = "fm-admin-key";
const VALUE_FIELD = { negative_surge: "negative_share", volume_spike: "count", sentiment_reversal: "sentiment_index" };
let openKey = null;
let pendingAction = null;

function fmtTime(epoch) {
  return new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function drawDetail(alert, points) {
  const canvas = document.getElementById("detail-chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 8;
  ctx.clearRect(0, 0, w, h);
  const field = VALUE_FIELD[alert.kind] || "negative_share";
  const size = alert.window_end - alert.window_start;
  const near = points.filter((p) => p.start >= alert.window_start - 20 * size && p.start <= alert.window_start + 10 * size);
  if (!near.length) return;
  const values = near.map((p) => p[field]).concat([alert.baseline, alert.value, alert.threshold]);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const x0 = near[0].start, x1 = near[near.length - 1].start + size;
  const X = (t) => pad + ((t - x0) / Math.max(x1 - x0, 1e-9)) * (w - 2 * pad);
  const Y = (v) => h - pad - ((v - lo) / (hi - lo)) * (h - 2 * pad);
  ctx.fillStyle = "#f5cba7";
  ctx.fillRect(X(alert.window_start), pad, Math.max(X(alert.window_end) - X(alert.window_start), 2), h - 2 * pad);
  ctx.strokeStyle = "#2980b9"; ctx.setLineDash([5, 4]); ctx.lineWidth = 1.5;
  ctx.beginPath(); ctx.moveTo(pad, Y(alert.baseline)); ctx.lineTo(w - pad, Y(alert.baseline)); ctx.stroke();
  ctx.setLineDash([]); ctx.strokeStyle = "#c0392b"; ctx.lineWidth = 2; ctx.beginPath();
  near.forEach((p, i) => {
    const x = X(p.start + size / 2), y = Y(p[field]);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function renderHeadlines(evidence) {
  const list = document.getElementById("detail-headlines");
  list.replaceChildren();
  if (!evidence.length) { list.append(el("li", "muted", "No messages were kept for this alert.")); return; }
  for (const e of evidence) {
    const item = el("li");
    item.dataset.messageId = e.id;
    const lang = textLang(e.text);
    const text = el("div", "text", e.text);
    text.lang = HTML_LANG[lang];
    item.append(text);
    item.append(el("div", "meta", `${LANG_LABEL[lang]} · ${e.source} · ${e.sentiment} ${Math.round(e.probability * 100)}% · ` +
      `negative ${Math.round(e.negative * 100)}% · ${fmtTime(e.event_time)} · id ${e.id}`));
    list.append(item);
  }
}

async function openAlert(key, keepStatus = false) {
  const panel = document.getElementById("alert-detail");
  const status = document.getElementById("detail-status");
  openKey = key;
  if (!keepStatus) status.textContent = "";
  const response = await fetch(`/api/alerts/${encodeURIComponent(key)}`);
  if (!response.ok) { panel.hidden = false; document.getElementById("detail-summary").textContent = `Alert ${key}: not found`; return; }
  const alert = await response.json();
  if (openKey !== key) return;
  panel.dataset.key = key;
  document.getElementById("detail-summary").textContent = alert.summary;
  document.getElementById("detail-meta").textContent =
    `${alert.rule_id} · ${alert.series} · ${alert.severity} · window ${fmtTime(alert.window_start)} · ` +
    `value ${alert.value} vs baseline ${alert.baseline} (threshold ${alert.threshold}) · ${alert.volume} messages · ` +
    `${alert.resolved ? "resolved" : "firing"} · ${alert.status} · delivery ${alert.dispatch_state}`;
  renderHeadlines(alert.evidence || []);
  panel.hidden = false;
  const [kind, ...rest] = alert.series.split(":");
  try {
    const trend = await fetch(`/api/trends/${encodeURIComponent(kind)}/${encodeURIComponent(rest.join(":"))}` +
      `?window=${encodeURIComponent(alert.window_spec)}&limit=500`);
    if (trend.ok && openKey === key) drawDetail(alert, (await trend.json()).points);
  } catch (err) { /* the chart is optional; the headlines are shown */ }
  panel._alert = alert;
}

function closeAlert() {
  openKey = null;
  document.getElementById("alert-detail").hidden = true;
  if (window.location.hash.startsWith("#alert=")) history.replaceState(null, "", window.location.pathname);
}

function fromHash() {
  const match = window.location.hash.match(/^#alert=(.+)$/);
  if (match) openAlert(decodeURIComponent(match[1])); else if (openKey) closeAlert();
}

async function adminCall(path, body) {
  const key = window.sessionStorage.getItem(KEY_STORE);
  if (!key) return { needKey: true };
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-API-Key": key },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 || response.status === 403) {
    window.sessionStorage.removeItem(KEY_STORE);
    return { needKey: true, error: `key refused (HTTP ${response.status})` };
  }
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

async function runAction(action) {
  const panel = document.getElementById("alert-detail");
  const status = document.getElementById("detail-status");
  const alert = panel._alert;
  if (!alert) return;
  const result = action === "silence"
    ? await adminCall("/api/silences", {
        matchers: [{ name: "series", value: alert.series, isRegex: false, isEqual: true },
                   { name: "rule", value: alert.rule_id, isRegex: false, isEqual: true }],
        duration_s: 3600, comment: `from the dashboard (alert ${alert.key})`,
      })
    : await adminCall(`/api/alerts/${encodeURIComponent(alert.key)}/ack`);
  if (result.needKey) {
    pendingAction = action;
    document.getElementById("key-form").hidden = false;
    document.getElementById("admin-key").focus();
    status.textContent = result.error ? `${result.error}: enter the admin key` : "Enter the admin API key to continue.";
    return;
  }
  if (!result.ok) { status.textContent = `error ${result.status}: ${JSON.stringify(result.data.detail || result.data)}`; return; }
  status.textContent = action === "silence"
    ? `Silenced ${alert.rule_id} on ${alert.series} until ${fmtTime(result.data.ends_at)} (silence ${result.data.id}).`
    : `Acknowledged by ${result.data.ack_by || "admin"}.`;
  if (action === "ack") openAlert(alert.key, true);
}

document.getElementById("detail-close").addEventListener("click", closeAlert);
document.getElementById("detail-silence").addEventListener("click", () => runAction("silence"));
document.getElementById("detail-ack").addEventListener("click", () => runAction("ack"));
document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  window.sessionStorage.setItem(KEY_STORE, document.getElementById("admin-key").value);
  document.getElementById("admin-key").value = "";
  document.getElementById("key-form").hidden = true;
  if (pendingAction) { const action = pendingAction; pendingAction = null; runAction(action); }
});
window.addEventListener("hashchange", fromHash);
document.addEventListener("keydown", (event) => { if (event.key === "Escape" && openKey) closeAlert(); });

// ---- latest headlines: language, topic, sentiment, tickers with company names ----
function renderFeed(data) {
  const counts = document.getElementById("lang-counts");
  counts.dataset.en = String(data.counts.en);
  counts.dataset.zh = String(data.counts.zh);
  counts.textContent = `EN ${data.counts.en} · 中文 ${data.counts.zh}`;
  const list = document.getElementById("feed");
  list.replaceChildren();
  if (!data.available) {
    list.append(el("li", "muted", "The scorer runs in another process; its counts are in /metrics."));
    return;
  }
  if (!data.headlines.length) { list.append(el("li", "muted", "No headline scored yet.")); return; }
  for (const h of data.headlines) {
    const item = el("li", `sentiment-${h.sentiment}`);
    item.dataset.id = h.id;
    item.dataset.lang = h.lang;
    const text = el("span", "text", h.text);
    text.lang = HTML_LANG[h.lang] || "";
    item.append(el("span", `lang lang-${h.lang}`, LANG_LABEL[h.lang] || h.lang), text);
    const tickers = h.tickers.map((t) => (t.name ? `${t.symbol} ${t.name}` : t.symbol)).join(", ");
    const meta = el("div", "meta", `${h.topic} · ${h.sentiment}` + (tickers ? ` · ${tickers}` : ""));
    item.append(meta);
    list.append(item);
  }
}

async function pollFeed() {
  try {
    const response = await fetch("/api/headlines?limit=15");
    if (response.ok) renderFeed(await response.json());
  } catch (err) {
    // the next poll retries
  } finally {
    setTimeout(pollFeed, 2000);
  }
}

connect();
fromHash();
pollFeed();
