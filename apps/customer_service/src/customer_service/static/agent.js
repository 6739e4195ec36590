// Agent page: queue of handed-off conversations, reply as a human, hand back.
// All conversation text is inserted with textContent.
"use strict";

const agent = { key: window.sessionStorage.getItem("cs-agent-key") || "", name: "Agent", selected: null, items: {} };
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function showError(message) { $("error").textContent = message || ""; }

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Content-Type": "application/json", "X-API-Key": agent.key, ...(options.headers || {}) },
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { const body = await response.json(); detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch (e) { /* status text */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

function formatTime(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

async function loadQueue() {
  if (!agent.key) return;
  try {
    const items = await api("/agent/queue");
    const body = $("queue").querySelector("tbody");
    body.replaceChildren();
    for (const item of items) {
      const row = el("tr", "queue-item");
      row.dataset.sessionId = item.session_id;
      if (item.session_id === agent.selected) row.classList.add("selected");
      row.appendChild(el("td", "session", item.session_id.slice(0, 8)));
      row.appendChild(el("td", "state", item.state));
      row.appendChild(el("td", "reason", item.handoff_why || item.handoff_reason || ""));
      row.appendChild(el("td", "since", formatTime(item.waiting_since)));
      row.appendChild(el("td", "last", item.last_customer_message || ""));
      row.addEventListener("click", () => openConversation(item.session_id));
      body.appendChild(row);
      agent.items[item.session_id] = item;
    }
    if (agent.selected && agent.items[agent.selected]) showWhy(agent.items[agent.selected]);
    showError("");
  } catch (e) { showError(`Queue: ${e.message}`); }
}

// Why the bot handed over, and the customer turns that led there (intent, confidence,
// what the bot answered).
function showWhy(item) {
  const panel = $("handoff-why");
  panel.hidden = !item.handoff_why;
  $("why-line").textContent = item.handoff_why ? `Why: ${item.handoff_why}` : "";
  const list = $("why-turns");
  list.replaceChildren();
  for (const turn of item.handoff_turns || []) {
    const entry = el("li", "why-turn");
    entry.appendChild(el("span", "text", `“${turn.text}”`));
    const confidence = typeof turn.confidence === "number" ? ` ${Math.round(turn.confidence * 100)}%` : "";
    const intent = turn.intent ? `${turn.intent}${confidence}` : "no intent";
    entry.appendChild(el("span", "meta", ` → ${intent}, bot: ${turn.answer || "no answer"}`));
    list.appendChild(entry);
  }
}

async function openConversation(sessionId) {
  agent.selected = sessionId;
  const history = await api(`/sessions/${sessionId}`);
  $("conversation-panel").hidden = false;
  $("conversation-title").textContent = `Conversation ${sessionId.slice(0, 8)} (${history.state})`;
  const box = $("messages");
  box.replaceChildren();
  for (const m of history.messages) {
    const item = el("div", `msg ${m.role}`);
    item.appendChild(el("span", "who", m.role));
    item.appendChild(el("span", "text", m.text));
    box.appendChild(item);
  }
  box.scrollTop = box.scrollHeight;
  if (agent.items[sessionId]) showWhy(agent.items[sessionId]);
  document.querySelectorAll("tr.queue-item").forEach((r) => r.classList.toggle("selected", r.dataset.sessionId === sessionId));
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  agent.key = $("api-key").value;
  agent.name = $("agent-name").value || "Agent";
  window.sessionStorage.setItem("cs-agent-key", agent.key);
  loadQueue();
});

$("reply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("reply").value.trim();
  if (!text || !agent.selected) return;
  try {
    await api(`/agent/sessions/${agent.selected}/reply`, {
      method: "POST", body: JSON.stringify({ agent: agent.name, message: text }),
    });
    $("reply").value = "";
    await openConversation(agent.selected);
    await loadQueue();
  } catch (e) { showError(`Reply: ${e.message}`); }
});

$("hand-back").addEventListener("click", async () => {
  if (!agent.selected) return;
  try {
    await api(`/agent/sessions/${agent.selected}/hand-back`, { method: "POST" });
    await openConversation(agent.selected);
    await loadQueue();
  } catch (e) { showError(`Hand back: ${e.message}`); }
});

// Review queue: correct the intent of customer messages behind thumbs-down answers and
// hand-offs (or mark them out of scope); each correction is labelled training data.
const OUT_OF_SCOPE = "__out_of_scope__";

async function loadReview() {
  if (!agent.key) return;
  try {
    const review = await api("/agent/review?limit=50");
    $("dataset-version").textContent = String(review.dataset_version);
    const body = $("review-table").querySelector("tbody");
    body.replaceChildren();
    for (const item of review.items) body.appendChild(reviewRow(item, review.intents));
    $("review-empty").hidden = review.items.length > 0;
  } catch (e) { showError(`Review: ${e.message}`); }
}

function reviewRow(item, intents) {
  const row = el("tr", "review-item");
  row.dataset.messageId = String(item.message_id);
  row.appendChild(el("td", "text", item.text));
  const confidence = typeof item.confidence === "number" ? ` (${Math.round(item.confidence * 100)}%)` : "";
  row.appendChild(el("td", "intent", item.intent ? `${item.intent}${confidence}` : "no intent"));
  row.appendChild(el("td", "reason", item.reason === "thumbs_down" ? "thumbs down" : "hand-off"));
  const cell = el("td", "correct");
  const select = el("select", "correct-intent");
  select.setAttribute("aria-label", "Correct intent");
  select.appendChild(new Option("Choose…", ""));
  for (const intent of intents) select.appendChild(new Option(intent, intent));
  select.appendChild(new Option("Out of scope", OUT_OF_SCOPE));
  if (item.intent && intents.includes(item.intent)) select.value = item.intent;
  const save = el("button", "save-correction", "Save");
  save.type = "button";
  save.addEventListener("click", () => saveCorrection(item.message_id, select.value));
  cell.append(select, save);
  row.appendChild(cell);
  return row;
}

async function saveCorrection(messageId, choice) {
  if (!choice) { showError("Choose an intent or Out of scope first"); return; }
  const body = choice === OUT_OF_SCOPE ? { out_of_scope: true } : { intent: choice };
  try {
    const saved = await api(`/agent/corrections/${messageId}`, {
      method: "PUT", body: JSON.stringify({ ...body, agent: agent.name }),
    });
    $("dataset-version").textContent = String(saved.dataset_version);
    showError("");
    await loadReview();
  } catch (e) { showError(`Correction: ${e.message}`); }
}

$("login-form").addEventListener("submit", () => loadReview());

if (agent.key) { $("api-key").value = agent.key; loadQueue(); loadReview(); }
window.setInterval(loadQueue, 3000);
window.setInterval(loadReview, 10000);
