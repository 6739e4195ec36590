// Customer chat window. Every user, bot, agent and document text is inserted with
// textContent (never innerHTML), so it can't inject markup.
"use strict";

const state = { sessionId: null, lastId: 0, conversationState: "bot", polling: null };
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function safeUrl(url) {
  // Only same-site paths or http(s) links become hrefs.
  try {
    const parsed = new URL(url, window.location.origin);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : "#";
  } catch (e) {
    return "#";
  }
}

function showError(message) { $("error").textContent = message || ""; }

function setStatus() {
  const labels = {
    bot: "You are chatting with the Bramble assistant.",
    waiting_for_agent: "Waiting for a member of our team to join...",
    with_agent: "You are chatting with a member of our team.",
  };
  $("status").textContent = labels[state.conversationState] || "";
}

function renderMessage(msg) {
  if (msg.id && document.querySelector(`[data-message-id="${msg.id}"]`)) return;
  const box = el("div", `msg ${msg.role}`);
  if (msg.id) box.dataset.messageId = String(msg.id);
  box.dataset.kind = msg.kind || "";
  const who = { user: "You", bot: "Assistant", agent: "Support team" }[msg.role] || msg.role;
  box.appendChild(el("span", "who", who));
  box.appendChild(el("span", "text", msg.text));
  if (msg.citations && msg.citations.length) {
    const list = el("ol", "citations");
    for (const c of msg.citations) {
      const item = el("li");
      item.value = c.number;
      const link = el("a", "citation", c.title);
      link.href = safeUrl(c.url);
      link.target = "_blank";
      link.rel = "noopener";
      item.appendChild(link);
      list.appendChild(item);
    }
    box.appendChild(list);
  }
  if (msg.options && msg.options.length) {
    const options = el("div", "options");
    msg.options.forEach((o, i) => {
      const b = el("button", "option", `${i + 1}. ${o.title}`);
      b.type = "button";
      b.addEventListener("click", () => send(o.title));
      options.appendChild(b);
    });
    box.appendChild(options);
  }
  if (msg.role === "bot" && msg.id && ["template", "retrieval", "clarify", "fallback"].includes(msg.kind)) {
    const thumbs = el("div", "thumbs");
    for (const [rating, label] of [["up", "\u25B2 Helpful"], ["down", "\u25BC Not helpful"]]) {
      const b = el("button", `thumb thumb-${rating}`, label);
      b.type = "button";
      b.setAttribute("aria-label", rating === "up" ? "Helpful" : "Not helpful");
      if ((msg.rating === 1 && rating === "up") || (msg.rating === -1 && rating === "down")) b.classList.add("chosen");
      b.addEventListener("click", () => feedback(msg.id, rating, thumbs, b));
      thumbs.appendChild(b);
    }
    box.appendChild(thumbs);
  }
  $("messages").appendChild(box);
  $("messages").scrollTop = $("messages").scrollHeight;
  if (msg.id) state.lastId = Math.max(state.lastId, msg.id);
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : (body.detail || []).map((d) => d.msg).join("; ");
    } catch (e) { /* keep the status text */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

async function startSession() {
  const saved = window.sessionStorage.getItem("cs-session");
  if (saved) {
    try {
      const history = await api(`/sessions/${saved}`);
      state.sessionId = saved;
      state.conversationState = history.state;
      history.messages.forEach(renderMessage);
      setStatus();
      return;
    } catch (e) { window.sessionStorage.removeItem("cs-session"); }
  }
  const started = await api("/sessions", { method: "POST" });
  state.sessionId = started.session_id;
  window.sessionStorage.setItem("cs-session", started.session_id);
  renderMessage({ role: "bot", text: started.greeting, kind: "greeting" });
  setStatus();
}

async function send(text) {
  showError("");
  try {
    const reply = await api("/chat", {
      method: "POST",
      body: JSON.stringify({ session_id: state.sessionId, message: text }),
    });
    renderMessage({ id: reply.user_message_id, role: "user", text });
    if (reply.answer !== null) {
      renderMessage({
        id: reply.message_id, role: "bot", text: reply.answer, kind: reply.kind,
        citations: reply.citations, options: reply.options,
      });
    }
    state.conversationState = reply.state;
    setStatus();
  } catch (e) {
    showError(`Could not send: ${e.message}`);
  }
}

async function feedback(messageId, rating, container, button) {
  try {
    await api(`/sessions/${state.sessionId}/feedback`, {
      method: "POST", body: JSON.stringify({ message_id: messageId, rating }),
    });
    container.querySelectorAll("button").forEach((b) => b.classList.remove("chosen"));
    button.classList.add("chosen");
  } catch (e) { showError(`Could not save feedback: ${e.message}`); }
}

async function poll() {
  if (!state.sessionId) return;
  try {
    const history = await api(`/sessions/${state.sessionId}?after=${state.lastId}`);
    history.messages.forEach(renderMessage);
    state.conversationState = history.state;
    setStatus();
  } catch (e) { /* transient: try again on the next tick */ }
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("message");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  send(text);
});

$("human").addEventListener("click", async () => {
  showError("");
  try {
    const history = await api(`/sessions/${state.sessionId}/handoff`, { method: "POST", body: "{}" });
    history.messages.forEach(renderMessage);
    state.conversationState = history.state;
    setStatus();
  } catch (e) { showError(`Could not reach the team: ${e.message}`); }
});

startSession().catch((e) => showError(`Could not start the chat: ${e.message}`));
state.polling = window.setInterval(poll, 2000);
