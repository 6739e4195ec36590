// Customer chat window. Every user, bot, agent and document text is inserted with
// textContent (never innerHTML), so it can't inject markup.
"use strict";

const state = {
  sessionId: null, lastId: 0, conversationState: "bot", polling: null,
  language: "en", languages: ["en"],
};
const $ = (id) => document.getElementById(id);

// The page's own texts in each language the bot speaks; the page follows the language
// of the bot's latest answer (and the switch in the header).
const TEXTS = {
  en: {
    title: "Bramble Bank - help chat", heading: "Bramble Bank help", agentLink: "Agent view",
    placeholder: "Ask a question...", inputLabel: "Your message", send: "Send",
    human: "Talk to a human", switchTo: "中文",
    who: { user: "You", bot: "Assistant", agent: "Support team" },
    status: {
      bot: "You are chatting with the Bramble assistant.",
      waiting_for_agent: "Waiting for a member of our team to join...",
      with_agent: "You are chatting with a member of our team.",
    },
    helpful: "Helpful", notHelpful: "Not helpful",
    sendFailed: "Could not send", feedbackFailed: "Could not save feedback",
    teamFailed: "Could not reach the team", startFailed: "Could not start the chat",
  },
  zh: {
    title: "布兰博银行 - 在线客服", heading: "布兰博银行帮助中心", agentLink: "客服后台",
    placeholder: "请输入您的问题……", inputLabel: "您的消息", send: "发送",
    human: "转人工", switchTo: "English",
    who: { user: "您", bot: "智能助手", agent: "人工客服" },
    status: {
      bot: "您正在与布兰博智能助手对话。",
      waiting_for_agent: "正在等待人工客服接入……",
      with_agent: "您正在与人工客服对话。",
    },
    helpful: "有帮助", notHelpful: "没帮助",
    sendFailed: "发送失败", feedbackFailed: "评价保存失败",
    teamFailed: "无法联系人工客服", startFailed: "无法开始对话",
  },
};
const t = () => TEXTS[state.language] || TEXTS.en;

function applyLanguage(language) {
  if (!TEXTS[language]) return;
  state.language = language;
  window.sessionStorage.setItem("cs-language", language);
  const texts = t();
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  document.title = texts.title;
  $("heading").textContent = texts.heading;
  $("agent-link").textContent = texts.agentLink;
  $("message").placeholder = texts.placeholder;
  $("message").setAttribute("aria-label", texts.inputLabel);
  $("send").textContent = texts.send;
  $("human").textContent = texts.human;
  const other = state.languages.find((l) => l !== language);
  $("language").hidden = !other;
  if (other) {
    $("language").textContent = TEXTS[language].switchTo;
    $("language").dataset.target = other;
  }
  setStatus();
}

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
  $("status").textContent = t().status[state.conversationState] || "";
}

function renderMessage(msg) {
  if (msg.id && document.querySelector(`[data-message-id="${msg.id}"]`)) return;
  const box = el("div", `msg ${msg.role}`);
  if (msg.id) box.dataset.messageId = String(msg.id);
  box.dataset.kind = msg.kind || "";
  const who = t().who[msg.role] || msg.role;
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
    for (const [rating, label] of [["up", t().helpful], ["down", t().notHelpful]]) {
      const b = el("button", `thumb thumb-${rating}`, `${rating === "up" ? "\u25B2" : "\u25BC"} ${label}`);
      b.type = "button";
      b.setAttribute("aria-label", label);
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

function preferredLanguage() {
  const saved = window.sessionStorage.getItem("cs-language");
  if (saved && TEXTS[saved]) return saved;
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

async function startSession() {
  const saved = window.sessionStorage.getItem("cs-session");
  if (saved) {
    try {
      const history = await api(`/sessions/${saved}`);
      state.sessionId = saved;
      state.conversationState = history.state;
      state.languages = JSON.parse(window.sessionStorage.getItem("cs-languages") || '["en"]');
      applyLanguage(preferredLanguage());
      history.messages.forEach(renderMessage);
      return;
    } catch (e) { window.sessionStorage.removeItem("cs-session"); }
  }
  const started = await api("/sessions", {
    method: "POST", body: JSON.stringify({ language: preferredLanguage() }),
  });
  state.sessionId = started.session_id;
  state.languages = started.languages || ["en"];
  window.sessionStorage.setItem("cs-session", started.session_id);
  window.sessionStorage.setItem("cs-languages", JSON.stringify(state.languages));
  applyLanguage(started.language || "en");
  renderMessage({ role: "bot", text: started.greeting, kind: "greeting" });
}

async function send(text) {
  showError("");
  try {
    const reply = await api("/chat", {
      method: "POST",
      body: JSON.stringify({ session_id: state.sessionId, message: text, language: state.language }),
    });
    // The page speaks the language the bot answered in.
    if (reply.answer !== null && reply.language && reply.language !== state.language) {
      applyLanguage(reply.language);
    }
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
    showError(`${t().sendFailed}: ${e.message}`);
  }
}

async function feedback(messageId, rating, container, button) {
  try {
    await api(`/sessions/${state.sessionId}/feedback`, {
      method: "POST", body: JSON.stringify({ message_id: messageId, rating }),
    });
    container.querySelectorAll("button").forEach((b) => b.classList.remove("chosen"));
    button.classList.add("chosen");
  } catch (e) { showError(`${t().feedbackFailed}: ${e.message}`); }
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
    const history = await api(`/sessions/${state.sessionId}/handoff`, {
      method: "POST", body: JSON.stringify({ language: state.language }),
    });
    history.messages.forEach(renderMessage);
    state.conversationState = history.state;
    setStatus();
  } catch (e) { showError(`${t().teamFailed}: ${e.message}`); }
});

$("language").addEventListener("click", () => applyLanguage($("language").dataset.target));

startSession().catch((e) => showError(`${t().startFailed}: ${e.message}`));
state.polling = window.setInterval(poll, 2000);
