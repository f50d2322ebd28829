// Chatwoot Dashboard App: Chatwoot posts {event: "appContext", data: {conversation, contact,
// currentAgent}} (a JSON string) to this iframe; the page asks for it again with
// "chatwoot-dashboard-app:fetch-info". Model text is only ever set with textContent / value.
"use strict";
const origin = document.querySelector('meta[name="chatwoot-origin"]').content;
const secret = new URLSearchParams(location.search).get("secret") || "";
const $ = (id) => document.getElementById(id);
let context = null, shown = null;

async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json", "X-BigramLM-Secret": secret},
                               body: JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.detail || ("HTTP " + r.status));
  return data;
}

function button(label, action) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = label; b.dataset.action = label.toLowerCase();
  b.addEventListener("click", action);
  return b;
}

function card(s) {
  const li = document.createElement("li");
  li.dataset.id = s.id;
  const text = document.createElement("textarea");
  text.value = s.text; text.readOnly = true; text.setAttribute("aria-label", "suggested reply");
  const note = document.createElement("div"); note.className = "muted note";
  const actions = document.createElement("div"); actions.className = "actions";
  const feedback = async (body, done) => {
    try { await post("app/feedback", {...body, suggestion_id: s.id, currentAgent: context.currentAgent});
          note.textContent = done; note.className = "done note"; }
    catch (e) { note.textContent = "not recorded: " + e.message; }
  };
  actions.append(
    button("Copy", async () => {
      text.select();
      try { await navigator.clipboard.writeText(text.value); note.textContent = "copied"; }
      catch (e) { note.textContent = "select the text and copy it"; }
    }),
    button("Edit", () => { text.readOnly = false; text.focus(); }),
    button("Accept", () => feedback({action: "accept", message: shown.message, reply: text.value, intent: shown.intent},
                                    "accepted")),
    button("Dismiss", () => feedback({action: "dismiss"}, "dismissed")));
  li.append(text, actions, note);
  return li;
}

async function show(data) {
  context = data;
  const agent = data.currentAgent || {};
  $("agent").textContent = agent.name ? "for " + agent.name : "";
  $("status").textContent = "writing suggestions…";
  try {
    shown = await post("app/suggest", {conversation: data.conversation, currentAgent: data.currentAgent});
  } catch (e) { $("status").textContent = "no suggestions: " + e.message; return; }
  $("intent").textContent = shown.intent ? "intent: " + shown.intent : "";
  $("suggestions").replaceChildren(...shown.suggestions.map(card));
  $("status").textContent = shown.turn === null ? "no customer message yet" :
    shown.suggestions.length + " suggestions for the latest customer message";
}

window.addEventListener("message", (event) => {
  if (event.origin !== origin) return;  // only Chatwoot's window speaks to this page
  let message = event.data;
  if (typeof message === "string") { try { message = JSON.parse(message); } catch (e) { return; } }
  if (message && message.event === "appContext" && message.data) show(message.data);
});
window.parent.postMessage("chatwoot-dashboard-app:fetch-info", "*");
