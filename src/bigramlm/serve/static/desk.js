// The agent desk. No build step, no framework.
// Rule: everything that comes from the model, the store or the brand profile is put in
// the page with textContent / createTextNode, never parsed as HTML. The model can and
// will emit "<script>".
"use strict";

const $ = (id) => document.getElementById(id);
const PLACEHOLDER = /\{\{[^{}]*\}\}/g;

let current = null;    // {message, result} of the last finished suggestion request
let controller = null; // aborts an in-flight stream when a new request starts
// The conversation on the desk: each message asked is a customer turn, each reply accepted an
// agent turn. Once it holds earlier turns, suggestions are for the latest customer turn read
// with its thread (POST api/conversation/suggest: "yes, that one" after "cancel order 5521").
let thread = { id: newThreadId(), turns: [] };

function newThreadId() {
  return "desk-" + (window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()));
}

function showThread() {
  $("thread").replaceChildren(...thread.turns.map((t) => {
    const li = document.createElement("li");
    li.className = "turn " + t.role;
    const who = document.createElement("b");
    who.textContent = t.role === "customer" ? "Customer" : "Agent";
    const text = document.createElement("span");
    text.textContent = " " + t.text;
    li.append(who, text);
    return li;
  }));
  $("thread-section").hidden = thread.turns.length === 0;
}

function addTurn(role, text) {
  const last = thread.turns[thread.turns.length - 1];
  if (!(role === "customer" && last && last.role === "customer" && last.text === text)) {  // asked again: one turn
    thread.turns.push({ role, text, time: Date.now() / 1000 });
  }
  showThread();
}

function newConversation() {
  thread = { id: newThreadId(), turns: [] };
  showThread();
}

// Suggestions for the thread's latest customer turn (not streamed: the thread is read first).
async function suggestForThread(message, n) {
  const turns = thread.turns.map((t) => ({ role: t.role, text: t.text, time: t.time }));
  const response = await api("api/conversation/suggest", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ conversation: { id: thread.id, source: "desk", turns }, n }), signal: controller.signal,
  });
  const data = await response.json();
  showResult(message, data);
  if (Array.isArray(data.similar_cases)) showSimilar(data.similar_cases);
}

function token() { return sessionStorage.getItem("bigramlm-token") || ""; }

// Header values are bytes on the wire, and fetch() takes them as ISO-8859-1 strings (it
// refuses other characters). The server compares the token's UTF-8 bytes, so a token is
// sent as one character per UTF-8 byte: "ä" (C3 A4) goes as "\u00c3\u00a4".
function utf8Bytes(text) {
  return Array.from(new TextEncoder().encode(text), (b) => String.fromCharCode(b)).join("");
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h["Authorization"] = "Bearer " + utf8Bytes(token());
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const response = await fetch(path, opts);
  if (response.status === 401) {
    $("token-row").hidden = false;
    throw new Error("this desk needs an access token: enter it and try again");
  }
  if (!response.ok) {
    let detail = response.status + " " + response.statusText;
    try { const body = await response.json(); if (body.detail) detail = body.detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function setStatus(text) { $("status").textContent = text; }

// Normalised Levenshtein distance, the same measure the server stores.
function editDistance(a, b) {
  if (a === b) return 0;
  const s = Array.from(a), t = Array.from(b);
  if (!s.length || !t.length) return 1;
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (s[i - 1] === t[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[t.length] / Math.max(s.length, t.length);
}

// Text with every remaining {{placeholder}} wrapped in <mark>, and each value filled in from
// the customer's message marked as such (``stated``: placeholder -> value), from text nodes.
function renderWithPlaceholders(el, text, stated) {
  el.replaceChildren();
  const values = Object.entries(stated || {}).filter(([, v]) => String(v));
  const escape = (v) => String(v).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp([PLACEHOLDER.source, ...values.map(([, v]) => escape(v))].join("|"), "g");
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    if (m.index > last) el.appendChild(document.createTextNode(text.slice(last, m.index)));
    const mark = document.createElement("mark");
    if (m[0].startsWith("{{")) {
      mark.className = "unfilled";
      mark.title = "fill this in before sending";
    } else {
      const named = values.find(([, v]) => String(v) === m[0]);
      mark.className = "from-message";
      mark.title = `taken from the customer's message: ${named ? named[0] : "a value"} (check it)`;
    }
    mark.textContent = m[0];
    el.appendChild(mark);
    last = m.index + m[0].length;
  }
  if (last < text.length) el.appendChild(document.createTextNode(text.slice(last)));
}

// A reply's light markdown as elements: paragraphs, line breaks, numbered and bulleted
// lists, **bold** and *italic*. Built from text nodes only (never parsed as HTML), so model
// text stays text; the placeholders stay marked. What is copied or sent stays the plain text.
const LIST_ITEM = /^\s*(?:(\d{1,3})[.)]|[-*\u2022+])\s+(.*)$/;
const EMPHASIS = /\*\*(?=\S)(.+?)\*\*|\*(?=[^\s*])([^*]+?)\*/g;

function renderInline(parent, text, stated) {
  let last = 0;
  const plain = (piece) => {
    const holder = document.createElement("span");
    renderWithPlaceholders(holder, piece, stated);
    parent.append(...holder.childNodes);
  };
  for (const m of text.matchAll(EMPHASIS)) {
    if (m.index > last) plain(text.slice(last, m.index));
    const el = document.createElement(m[1] !== undefined ? "strong" : "em");
    renderInline(el, m[1] !== undefined ? m[1] : m[2], stated);
    parent.appendChild(el);
    last = m.index + m[0].length;
  }
  if (last < text.length) plain(text.slice(last));
}

function renderReply(el, text, stated) {
  el.replaceChildren();
  el.classList.add("rendered");
  for (const block of String(text).split(/\n\s*\n/)) {
    const lines = block.split("\n").filter((l) => l.trim());
    if (!lines.length) continue;
    const items = lines.map((l) => l.match(LIST_ITEM));
    if (items.every(Boolean)) {
      const list = document.createElement(items[0][1] ? "ol" : "ul");
      if (items[0][1] && Number(items[0][1]) !== 1) list.start = Number(items[0][1]);
      for (const item of items) {
        const li = document.createElement("li");
        renderInline(li, item[2], stated);
        list.appendChild(li);
      }
      el.appendChild(list);
      continue;
    }
    const p = document.createElement("p");
    lines.forEach((line, i) => {
      if (i) p.appendChild(document.createElement("br"));
      renderInline(p, line.trim(), stated);
    });
    el.appendChild(p);
  }
}

let agent = null;  // the named agent whose token this page sends (GET api/me), or null

async function refreshStats() {
  try {
    const s = await (await api(agent ? `api/stats?agent=${encodeURIComponent(agent)}` : "api/stats")).json();
    const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(0) + "%");
    const dist = s.mean_edit_distance === null ? "–" : s.mean_edit_distance.toFixed(3);
    $("stats").textContent = (agent ? `${agent}: ` : "") + `cases ${s.cases} · since last learn ${s.cases_since_last_learn} · acceptance ${pct(s.acceptance_rate)}` +
      ` (light edits ${pct(s.light_edit_acceptance_rate)}) · mean edit distance ${dist}` +
      ` · dismissed ${s.dismissed} (${pct(s.dismissal_rate)})`;
  } catch (e) { /* stats are a nicety; errors show on actions */ }
}

function showUnderstanding(u) {
  $("understanding").hidden = false;
  $("intent").textContent = u.intent == null ? "–" : String(u.intent);
  $("category").textContent = u.category == null ? "–" : String(u.category);
  const p = u.intent_probability;
  $("confidence").textContent = typeof p === "number" ? (100 * p).toFixed(1) + "%" : "–";
  // Below the calibrated threshold the intent is a best guess, and the page says so.
  $("unsure").hidden = !u.intent_unsure;
  $("understanding").classList.toggle("unsure", Boolean(u.intent_unsure));
  // No intent of the run fits: distinct from unsure (a known intent, a best guess).
  $("out-of-scope").hidden = !u.out_of_scope;
  $("understanding").classList.toggle("out-of-scope", Boolean(u.out_of_scope));
  $("loose").hidden = !u.out_of_scope;
  const replaced = u.replaced_characters || 0;
  $("replaced").textContent = replaced ? `${replaced} unknown character(s) replaced` : "";
  // The first event carries the similar cases: show them while the replies are written.
  if (Array.isArray(u.similar_cases)) showSimilar(u.similar_cases);
  showIntentPicker(u);
}

// The intents the understanding ranked: an agent who knows better answers for another.
function showIntentPicker(u) {
  const pick = $("intent-pick");
  const intents = (u.intents || []).filter((i) => i && i.intent != null);
  pick.replaceChildren(...intents.map((i) => {
    const option = document.createElement("option");
    option.value = String(i.intent);
    const p = typeof i.probability === "number" ? ` (${(100 * i.probability).toFixed(0)}%)` : "";
    option.textContent = String(i.intent) + p;
    return option;
  }));
  if (u.intent != null) {
    pick.value = String(u.intent);
  } else {  // out of scope: nothing is picked until the agent picks
    const none = document.createElement("option");
    none.value = "";
    none.textContent = "pick an intent";
    pick.prepend(none);
    pick.value = "";
  }
  $("pick-row").hidden = intents.length < (u.intent == null ? 1 : 2);
}

function streamingCard(index) {
  const list = $("suggestions");
  let li = list.querySelector(`li[data-index="${index}"]`);
  if (!li) {
    li = document.createElement("li");
    li.className = "suggestion streaming";
    li.dataset.index = String(index);
    const text = document.createElement("div");
    text.className = "text";
    li.appendChild(text);
    list.appendChild(li);
  }
  return li.querySelector(".text");
}

function suggestionCard(s, message, result) {
  const li = $("suggestion-template").content.firstElementChild.cloneNode(true);
  const original = String(s.filled_text ?? s.text ?? "");
  li.dataset.id = String(s.id);
  li.dataset.source = String(s.source ?? "model");
  // Where it comes from: the model's draft, or a resolved case's (or training row's) reply, copied.
  li.querySelector(".origin").textContent = String(s.label ?? "model draft");
  li.querySelector(".team-edits").textContent = (s.team_edits || []).map((e) => String(e.description)).join(" · ");
  // One score, the one the order uses: how much the reply agrees with the other candidates
  // and the similar cases' replies (chrF, 0-100), lowered when it is like a dismissed one.
  // The brand's holding reply (out of scope) agrees with nothing: it is the brand's, not a ranked answer.
  li.querySelector(".score").textContent = typeof s.score === "number" && s.source !== "brand" ? `agreement ${Math.round(s.score)}/100` : "";
  const warnings = [];
  const unfilled = s.unfilled_placeholders || [];
  const mangled = s.mangled_placeholders || [];
  if (unfilled.length) warnings.push(`${unfilled.length} placeholder(s) to fill`);
  const mangledText = (m) => (m && typeof m === "object" ? String(m.text ?? "") : String(m));
  if (mangled.length) warnings.push(`check garbled placeholder(s): ${mangled.map(mangledText).join(" | ")}`);
  li.querySelector(".warn").textContent = warnings.join(" · ");
  const stated = s.from_message || {};
  li.querySelector(".stated").textContent = Object.keys(stated).length
    ? "from the message: " + Object.keys(stated).map(String).join(", ") : "";
  const textEl = li.querySelector(".text");
  renderReply(textEl, original, stated);
  const editor = li.querySelector(".editor");
  const info = li.querySelector(".edit-info");
  const finalText = () => (editor.hidden ? original : editor.value);
  const describe = () => {
    const d = editDistance(original, finalText());
    info.textContent = d === 0 ? "not edited" : `edited · distance ${d.toFixed(3)}`;
  };
  editor.addEventListener("input", describe);
  li.querySelector(".copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(finalText()); info.textContent = "copied"; }
    catch (e) { editor.hidden = false; editor.value = finalText(); editor.select(); info.textContent = "press Ctrl+C to copy"; }
  });
  li.querySelector(".edit").addEventListener("click", () => {
    if (editor.hidden) { editor.value = original; editor.hidden = false; textEl.hidden = true; editor.focus(); describe(); }
  });
  const accept = li.querySelector(".accept");
  const dismiss = li.querySelector(".dismiss");
  const reason = li.querySelector(".reason");
  accept.addEventListener("click", async () => {
    const reply = finalText();
    if (!reply.trim()) { showError("the reply is empty"); return; }
    const open = (reply.match(PLACEHOLDER) || []).length;
    if (open && !window.confirm(`The reply still holds ${open} placeholder(s) such as ${reply.match(PLACEHOLDER)[0]}. Accept it anyway?`)) return;
    if (result.intent_unsure && !window.confirm(`The intent (${String(result.intent)}) is unsure. Accept this reply anyway?`)) return;
    if (current && current.accepted > 0 && !window.confirm("You already accepted a reply to this message. Accept this one too?")) return;
    accept.disabled = dismiss.disabled = true; // one answer per suggestion: accepted or dismissed
    try {
      const body = {
        message, reply, suggestion_id: String(s.id),
        edited: reply !== original,
        intent: result.intent == null ? null : String(result.intent),
        category: result.category == null ? null : String(result.category),
      };
      const saved = await (await api("api/cases", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      })).json();
      li.classList.add("accepted");
      reason.disabled = true;
      if (current) current.accepted += 1;
      addTurn("agent", reply);
      const d = saved.edit_distance;
      info.textContent = `saved as case #${saved.id} · ${saved.edited ? "edited" : "not edited"}` +
        (typeof d === "number" ? ` · edit distance ${d.toFixed(3)}` : "");
      showError("");
      refreshStats();
      refreshRules();
    } catch (e) {
      accept.disabled = dismiss.disabled = false;
      showError("could not store the case: " + e.message);
    }
  });
  dismiss.addEventListener("click", async () => {
    accept.disabled = dismiss.disabled = true;
    try {
      const body = { suggestion_id: String(s.id), action: "dismiss" };
      if (reason.value) body.reason = reason.value;
      await api("api/feedback", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      li.classList.add("dismissed");
      for (const b of li.querySelectorAll("button, select")) b.disabled = true;
      editor.hidden = true;
      textEl.hidden = false;
      info.textContent = "dismissed" + (reason.value ? ` · ${reason.value}` : "");
      showError("");
      refreshStats();
    } catch (e) {
      accept.disabled = dismiss.disabled = false;
      showError("could not dismiss the suggestion: " + e.message);
    }
  });
  li.addEventListener("keydown", (e) => {
    if (e.target !== li || e.ctrlKey || e.metaKey || e.altKey) return;  // typing in the editor is typing
    const button = { c: ".copy", e: ".edit", a: ".accept", d: ".dismiss" }[e.key.toLowerCase()];
    if (button) { e.preventDefault(); li.querySelector(button).click(); }
  });
  return li;
}

// Out of scope, or when no card will do, the agent writes the reply and names its intent:
// an existing one or a new one (a new intent is learned from such cases, support.learning).
function showOwnReply(result) {
  const known = (result.intents || []).filter((i) => i && i.intent != null);
  $("own-intents").replaceChildren(...known.map((i) => {
    const option = document.createElement("option");
    option.value = String(i.intent);
    return option;
  }));
  $("own-intent").value = result.intent == null ? "" : String(result.intent);
  $("own-info").textContent = "";
  $("own").hidden = false;
  $("own").open = Boolean(result.out_of_scope);
}

async function saveOwnReply() {
  if (!current) return;
  const reply = $("own-reply").value, intent = $("own-intent").value.trim();
  if (!reply.trim()) { showError("the reply is empty"); return; }
  if (!intent) { showError("name the intent the reply answers (an existing one, or a new name)"); return; }
  const known = (current.result.intents || []).find((i) => i && String(i.intent) === intent);
  const body = { message: current.message, reply, intent, edited: true,
                 category: known && known.category != null ? String(known.category) : null };
  $("own-save").disabled = true;
  try {
    const saved = await (await api("api/cases", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    })).json();
    $("own-info").textContent = `saved as case #${saved.id} of ${intent}` + (known ? "" : " (a new intent)");
    current.accepted += 1;
    addTurn("agent", reply);
    showError("");
    refreshStats();
  } catch (e) {
    showError("could not store the case: " + e.message);
  } finally {
    $("own-save").disabled = false;
  }
}

function showResult(message, result) {
  current = { message, result, accepted: 0 };
  showUnderstanding(result);
  showOwnReply(result);
  const list = $("suggestions");
  // The ranked cards replace the streamed ones: the list keeps at least the height it had, so
  // what is below it (the similar cases, in a narrow panel) does not jump up when the stream
  // ends; the next request lets it go.
  list.style.minHeight = `${list.offsetHeight}px`;
  list.replaceChildren(...(result.suggestions || []).map((s) => suggestionCard(s, message, result)));
  const first = list.querySelector("li.suggestion");
  if (first) first.focus();  // the keyboard lands on the best reply
}

function showSimilar(cases) {
  const similar = $("similar");
  similar.replaceChildren();
  for (const c of cases || []) {
    const li = document.createElement("li");
    const meta = document.createElement("div");
    meta.className = "case-meta";
    const bits = [];
    if (c.label) bits.push(String(c.label));  // "resolved case #12" or "training row #345"
    if (c.intent != null) bits.push(String(c.intent));
    if (typeof c.score === "number") bits.push(`similarity ${c.score.toFixed(3)}`);
    meta.textContent = bits.join(" · ");
    const msg = document.createElement("div");
    msg.className = "case-message";
    msg.textContent = String(c.message ?? c.instruction ?? "");
    const reply = document.createElement("div");
    reply.className = "case-reply";
    renderReply(reply, String(c.reply ?? c.response ?? ""));
    li.append(meta, msg, reply);
    similar.appendChild(li);
  }
}

// Server-sent events over a POST response: "event: x\ndata: {...}\n\n".
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) yield { event, data: JSON.parse(data) };
    }
  }
}

async function suggest(ev, intent) {
  if (ev) ev.preventDefault();
  const message = $("message").value;
  if (!message.trim()) return;
  if ($("token").value) {
    sessionStorage.setItem("bigramlm-token", $("token").value);
    if (!agent) api("api/me").then((r) => r.json()).then((d) => { agent = d.agent; }).catch(() => {});
  }
  if (controller) controller.abort();
  controller = new AbortController();
  const n = Math.max(1, Math.min(8, parseInt($("n").value, 10) || 3));
  showError("");
  $("suggestions").replaceChildren();
  $("suggestions").style.minHeight = "";
  $("similar").replaceChildren();
  if (!intent) $("understanding").hidden = true;
  $("suggest").disabled = true;
  setStatus("generating…");
  document.body.dataset.state = "streaming";
  if (!intent) addTurn("customer", message);
  try {
    if (!intent && thread.turns.length > 1) {
      await suggestForThread(message, n);
      setStatus("");
      document.body.dataset.state = "done";
      return;
    }
    const response = await api("api/suggest/stream", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ message, n, ...(intent ? { intent } : {}), ...($("length").value ? { length: $("length").value } : {}) }),
      signal: controller.signal,
    });
    let finished = false;
    for await (const { event, data } of sseEvents(response)) {
      if (event === "understanding") showUnderstanding(data);
      else if (event === "token") { const el = streamingCard(data.index); el.textContent += String(data.text); }
      else if (event === "done") { showResult(message, data); finished = true; }
      else if (event === "error") throw new Error(String(data.message));
    }
    if (!finished) throw new Error("the stream ended early");
    setStatus("");
    document.body.dataset.state = "done";
  } catch (e) {
    if (e.name !== "AbortError") { showError(e.message); setStatus(""); document.body.dataset.state = "error"; }
  } finally {
    $("suggest").disabled = false;
  }
}

async function switchRule(r, action, button) {
  button.disabled = true;
  try {
    await api(`api/rules/${encodeURIComponent(String(r.id))}/${action}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    refreshRules();
  } catch (e) { showError("could not switch the rule: " + e.message); button.disabled = false; }
}

function ruleButton(r, label, className, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = label;
  button.addEventListener("click", () => switchRule(r, action, button));
  return button;
}

/* A learned rule no agent has switched yet is marked new; one waiting for review says why. */
function ruleItem(r) {
  const li = document.createElement("li");
  li.className = "rule" + (r.enabled ? "" : " off") + (r.unreviewed ? " new" : "");
  li.dataset.id = String(r.id);
  const text = document.createElement("span");
  text.className = "rule-text";
  text.textContent = String(r.description);
  const parts = [text, " ", ruleButton(r, r.enabled ? "Disable" : "Enable", "toggle-rule", r.enabled ? "disable" : "enable")];
  if (r.unreviewed) {
    const badge = document.createElement("strong");
    badge.className = "rule-new";
    badge.textContent = r.review && !r.enabled ? "new, awaiting review" : "new";
    parts.unshift(badge, " ");
    if (r.enabled) parts.push(" ", ruleButton(r, "Keep", "keep-rule", "enable"));
  }
  if (r.review && !r.enabled) {
    const why = document.createElement("span");
    why.className = "rule-review";
    why.textContent = String(r.review);
    parts.push(" ", why);
  }
  li.append(...parts);
  return li;
}

async function refreshRules() {
  try {
    const { rules } = await (await api("api/rules")).json();
    const list = $("rules");
    list.replaceChildren(...(rules || []).map(ruleItem));
    if (!list.children.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "none yet";
      list.appendChild(li);
    }
  } catch (e) { /* rules are shown when the server has them */ }
}

function showCounter() {
  const box = $("message");
  const limit = box.maxLength > 0 ? box.maxLength : 2000;
  $("counter").textContent = `${box.value.length} / ${limit}`;
  $("counter").classList.toggle("warn", box.value.length >= limit);
}

async function init() {
  $("ask").addEventListener("submit", (e) => suggest(e));
  $("message").addEventListener("input", showCounter);
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("ask").requestSubmit(); }
  });
  $("intent-pick").addEventListener("change", () => { if ($("intent-pick").value) suggest(null, $("intent-pick").value); });
  $("own-save").addEventListener("click", saveOwnReply);
  $("new-thread").addEventListener("click", newConversation);
  try {
    const config = await (await api("api/config")).json();
    const limit = config.limits && config.limits.max_message_chars;
    if (Number.isInteger(limit) && limit > 0) $("message").maxLength = limit;
  } catch (e) { /* the default limit stays */ }
  showCounter();
  try { agent = (await (await api("api/me")).json()).agent; } catch (e) { /* asks for the token on first use */ }
  try {
    const health = await (await fetch("healthz")).json();
    $("run").textContent = "serving " + String(health.run);
    if (!health.assistant) showError("this run cannot suggest replies: " + String(health.assistant_error || "no assistant"));
    else if (health.understanding_degraded) showError("intents are a fallback: " + String(health.understanding_degraded));
  } catch (e) { showError("server unreachable"); }
  refreshStats();
  refreshRules();
}

init();
