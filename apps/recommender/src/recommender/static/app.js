// Playground: every piece of server data is inserted with textContent (never innerHTML).
"use strict";

const $ = (id) => document.getElementById(id);

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function getJson(url, options) {
  const resp = await fetch(url, options);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(`${resp.status}: ${detail}`);
  }
  return body;
}

// Han characters mark an item of the Chinese catalogue slice.
const HAN = /\p{Script=Han}/u;
let allUsers = [];

function titleNode(title) {
  const span = document.createElement("span");
  span.textContent = title;
  if (HAN.test(title)) {
    span.lang = "zh";
    const badge = document.createElement("span");
    badge.className = "lang-badge";
    badge.textContent = "中文";
    span.appendChild(badge);
  }
  return span;
}

async function loadUsers() {
  const data = await getJson("/users");
  allUsers = data.users;
  fillUsers();
}

function fillUsers() {
  const wanted = $("catalogue-select").value;
  const select = $("user-select");
  select.replaceChildren();
  for (const user of allUsers) {
    if (wanted !== "all" && user.language !== wanted) continue;
    const opt = document.createElement("option");
    opt.value = user.id;
    opt.textContent = `${user.name} (${user.id}, ${user.history} liked, bucket ${user.bucket})`;
    select.appendChild(opt);
  }
}

async function showHistory(userId) {
  const data = await getJson(`/users/${encodeURIComponent(userId)}/history?limit=50`);
  const list = $("history");
  list.replaceChildren();
  for (const item of data.items) {
    const li = document.createElement("li");
    li.appendChild(titleNode(item.title));
    const cat = document.createElement("span");
    cat.className = "cat";
    cat.textContent = item.categories.join(", ");
    li.appendChild(cat);
    list.appendChild(li);
  }
  $("history-count").textContent = `(${data.items.length} items)`;
  return data.items;
}

function renderResults(data) {
  const list = $("results");
  list.replaceChildren();
  const template = $("result-template");
  for (const item of data.items) {
    const node = template.content.firstElementChild.cloneNode(true);
    node.dataset.itemId = item.id;
    node.querySelector(".title").replaceChildren(titleNode(item.title));
    node.querySelector(".score").textContent = `score ${item.score.toFixed(3)}`;
    const reasons = item.because.map((r) => `${r.title} (sim ${r.similarity.toFixed(2)})`);
    node.querySelector(".because").textContent =
      reasons.length ? `because you liked: ${reasons.join("; ")}` : "no single history item stands out";
    const bars = node.querySelector(".bars");
    const top = Object.entries(item.contributions)
      .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
      .slice(0, 5);
    for (const [name, value] of top) {
      const bar = document.createElement("span");
      bar.className = `bar ${value >= 0 ? "pos" : "neg"}`;
      bar.textContent = `${name} ${value >= 0 ? "+" : ""}${value.toFixed(2)}`;
      bars.appendChild(bar);
    }
    list.appendChild(node);
  }
  $("bucket").textContent = `bucket ${data.bucket} · λ ${data.mmr_lambda.toFixed(2)}`;
  $("took").textContent = `${data.took_ms.toFixed(1)} ms`;
}

async function recommend() {
  const userId = $("user-select").value;
  if (!userId) return;
  setStatus("loading…", false);
  try {
    await showHistory(userId);
    const body = { user_id: userId, top_k: Number($("top-k").value) || 10 };
    if (!$("use-bucket").checked) body.mmr_lambda = Number($("lambda").value);
    const data = await getJson("/recommend", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    renderResults(data);
    setStatus(`${data.items.length} recommendations`, false);
  } catch (err) {
    setStatus(String(err.message || err), true);
  }
}

$("lambda").addEventListener("input", () => {
  $("lambda-value").textContent = Number($("lambda").value).toFixed(2);
  $("use-bucket").checked = false;
});
$("run").addEventListener("click", recommend);
$("user-select").addEventListener("change", recommend);
$("catalogue-select").addEventListener("change", () => {
  fillUsers();
  recommend();
});

loadUsers()
  .then(recommend)
  .catch((err) => setStatus(String(err.message || err), true));
