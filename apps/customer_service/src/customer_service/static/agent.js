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

if (agent.key) { $("api-key").value = agent.key; loadQueue(); }
window.setInterval(loadQueue, 3000);
