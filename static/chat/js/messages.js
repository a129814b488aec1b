// The messages of the thread as elements: a user message and a reply (<article> built from
// the templates in chat.html, the same markup as _user_message.html and _reply.html), and
// the parts of a reply a stream or a saved state fills in. Model text only ever goes in as
// text; the only HTML put in is sanitized (the server's, or markdown-live.js's).

import { renderAttachments } from "./attachments.js";
import { format, fromTemplate, i18n, textDirection } from "./dom.js";
import { patchChildren, serverFragment } from "./markdown-live.js";

const STATUS_LABELS = { streaming: "writing", stopped: "stopped", error: "error", incomplete: "incomplete" };

/** Provider labels by name ("fakeai" -> "FakeAI"), read from the model menu's groups. */
const providerLabels = {};
for (const group of document.querySelectorAll("#model-select optgroup[data-provider]")) {
  providerLabels[group.dataset.provider] = group.dataset.label;
}

export function modelLabel(provider, model) {
  const label = providerLabels[provider];
  return label ? `${label} · ${model}` : model;
}

export function removeEmptyState() {
  document.getElementById("empty-state")?.remove();
}

/** A new user message with `text` and `files` (attachments' JSON), appended to `parent`. */
export function addUserMessage(parent, text, files = []) {
  removeEmptyState();
  const article = fromTemplate("tpl-user-message");
  const content = article.querySelector("[data-content]");
  content.textContent = text;
  content.dir = textDirection(text);
  renderAttachments(article.querySelector("[data-attachments]"), files);
  parent.append(article);
  return article;
}

/** A new, empty reply being written by `provider`/`model`, appended to `parent`. */
export function addReply(parent, provider, model) {
  removeEmptyState();
  const article = fromTemplate("tpl-reply");
  setReplyModel(article, provider, model);
  setReplyStatus(article, "streaming");
  parent.append(article);
  return article;
}

export function setReplyModel(article, provider, model) {
  if (!provider) return;
  article.dataset.provider = provider;
  article.dataset.model = model;
  article.querySelector("[data-model-label]").textContent = modelLabel(provider, model);
}

/** data-status ("streaming", "complete", "stopped", "error", "incomplete"), its label, aria-busy. */
export function setReplyStatus(article, status) {
  article.dataset.status = status;
  article.querySelector("[data-status-label]").textContent = i18n[STATUS_LABELS[status]] ?? "";
  if (status === "streaming") article.setAttribute("aria-busy", "true");
  else article.removeAttribute("aria-busy");
  showStoppedNote(article);
}

/** The reply's content element ([data-content]). */
export function replyContent(article) {
  return article.querySelector("[data-content]");
}

/** The server's sanitized rendering (markdown.py + nh3) as the reply's content. */
export function setReplyHtml(article, html) {
  const content = replyContent(article);
  content.classList.remove("stream-text", "is-plain", "is-markdown");
  patchChildren(content, serverFragment(html));
  addCodeCopyButtons(article);
}

/** Plain text as the reply's content (no rendering available). */
export function setReplyPlainText(article, text) {
  const content = replyContent(article);
  content.classList.remove("stream-text", "is-markdown", "is-plain");
  if (!text) {
    content.replaceChildren();
    return;
  }
  const paragraph = document.createElement("p");
  paragraph.className = "stream-text";
  paragraph.textContent = text;
  content.replaceChildren(paragraph);
}

/**
 * The reply's Markdown source: what Copy copies (tables keep their pipes, code its
 * fences, math its LaTeX). Kept in its <template data-source>.
 */
export function replySource(article) {
  return article.querySelector("template[data-source]")?.content.textContent ?? "";
}

export function setReplySource(article, text) {
  const source = article.querySelector("template[data-source]");
  if (source) source.content.replaceChildren(document.createTextNode(text || ""));
  setTextDirection(article, text);
}

/** dir="rtl"/"ltr" on the content by its first strong character. */
export function setTextDirection(article, text) {
  if (text) replyContent(article).dir = textDirection(text);
}

export function setReplyError(article, message, detail) {
  const error = article.querySelector("[data-error]");
  error.textContent = message || "";
  error.hidden = !message;
  const detailEl = article.querySelector("[data-error-detail]");
  if (detailEl) {
    detailEl.textContent = detail || "";
    detailEl.hidden = !detail;
  }
}

/** "8 earlier messages were left out to fit the model's context." (worded by the server) */
export function setTrimmed(article, note) {
  const el = article.querySelector("[data-trimmed]");
  el.textContent = note || "";
  el.hidden = !note;
}

/** "Answered by gpt-4o-mini: claude-… was unavailable." (worded by the server) */
export function setFallback(article, note) {
  const el = article.querySelector("[data-fallback]");
  if (!el) return;
  el.textContent = note || "";
  el.hidden = !note;
}

/** Why the reply did not finish normally (worded by the server), or nothing. */
export function setReplyNotice(article, notice) {
  const el = article.querySelector("[data-notice]");
  el.textContent = notice || "";
  el.hidden = !notice;
  delete el.dataset.stoppedNote;
  showStoppedNote(article);
}

/**
 * A reply stopped before its first word would be a bare "Stopped" header: its notice
 * says "Stopped before the model answered." (as _reply.html does after a reload), unless
 * the server gave one. The note goes when the reply gets text or another status.
 */
function showStoppedNote(article) {
  const el = article.querySelector("[data-notice]");
  if (!el) return;
  const ours = el.dataset.stoppedNote === "true";
  const wanted = article.dataset.status === "stopped" && !replySource(article).trim() && Boolean(i18n.stoppedEmpty);
  if (wanted && (ours || !el.textContent)) {
    el.textContent = i18n.stoppedEmpty;
    el.hidden = false;
    el.dataset.stoppedNote = "true";
  } else if (!wanted && ours) {
    el.textContent = "";
    el.hidden = true;
    delete el.dataset.stoppedNote;
  }
}

export function setReplyActions(article, { canContinue = false, canRetry = false } = {}) {
  article.querySelector("[data-action=continue]").hidden = !canContinue;
  article.querySelector("[data-action=retry]").hidden = !canRetry;
}

// --- The model's reasoning ----------------------------------------------------------------
// A collapsed <details> above the answer. Its summary says "Thinking… 5 s" while the model
// thinks, then "Thought for 12 s" (chat/templatetags/chat_reasoning.py words it the same
// way for a saved reply); "Reasoning" when the time is not known.

/** The summary's labels, translated: carried by the blank reply in chat.html's templates. */
const reasoningLabels = document.getElementById("tpl-reply")?.content.querySelector("[data-reasoning]")?.dataset ?? {};

/** "Thought for 12 s" for `ms` milliseconds of thinking (null: "Reasoning"). */
export function thoughtFor(ms) {
  const labels = reasoningLabels;
  if (ms === null || ms === undefined) return labels.labelReasoning ?? "";
  if (ms < 1000) return labels.labelMoment ?? "";
  const total = Math.floor((ms + 500) / 1000);
  if (total < 60) return format(labels.labelSeconds, { seconds: total });
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  if (!seconds) return format(labels.labelMinutes, { minutes });
  return format(labels.labelMinutesSeconds, { minutes, seconds });
}

/**
 * The reasoning block's summary: while `thinking`, "Thinking…" and the seconds so far
 * (`ms`, null when not known); otherwise "Thought for …" for `ms`.
 */
export function setReasoningSummary(article, { ms = null, thinking = false } = {}) {
  const block = article.querySelector("[data-reasoning]");
  const summary = block?.querySelector("[data-reasoning-summary]");
  if (!summary) return;
  let label;
  if (!thinking) label = thoughtFor(ms);
  else if (ms === null || ms < 1000) label = reasoningLabels.labelThinking ?? "";
  else label = format(reasoningLabels.labelThinkingSeconds, { seconds: Math.floor(ms / 1000) });
  if (summary.textContent !== label) summary.textContent = label;
  if (thinking || ms === null || ms === undefined) delete block.dataset.reasoningMs;
  else block.dataset.reasoningMs = String(ms);
}

/** The whole reasoning so far (hidden when empty), and its summary (see setReasoningSummary). */
export function setReasoning(article, text, summary = {}) {
  const block = article.querySelector("[data-reasoning]");
  const body = block.querySelector("[data-reasoning-text]");
  body.textContent = text || "";
  block.hidden = !text;
  if (text) body.dir = textDirection(text);
  setReasoningSummary(article, summary);
}

/** A piece of reasoning, appended; an opened block follows it (when read to its end). */
export function appendReasoning(article, text) {
  const block = article.querySelector("[data-reasoning]");
  block.hidden = false;
  const body = block.querySelector("[data-reasoning-text]");
  const following = block.open && body.scrollHeight - body.scrollTop - body.clientHeight < 24;
  body.append(document.createTextNode(text));
  if (body.textContent.length < 400) body.dir = textDirection(body.textContent);
  if (following) body.scrollTop = body.scrollHeight;
}

/** Pattern of the meta line with reasoning tokens, from the blank reply in chat.html. */
const tokensWithReasoning = document.getElementById("tpl-reply")?.content.querySelector("[data-tokens]")?.dataset.tokensReasoning;

/** "120 in · 860 out tokens", with "(700 reasoning)" when the provider counted them. */
export function setReplyTokens(article, input, output, reasoning = null) {
  let text = "";
  if (output !== null && output !== undefined) {
    const values = { input: input ?? 0, output, reasoning };
    text = reasoning && tokensWithReasoning ? format(tokensWithReasoning, values) : format(i18n.tokens, values);
  }
  article.querySelector("[data-tokens]").textContent = text;
}

/** Empty a reply for a new attempt (Retry) by `provider`/`model`. */
export function resetReply(article, provider, model) {
  replyContent(article).replaceChildren();
  setReasoning(article, "");
  setReplySource(article, "");
  setReplyTokens(article, null, null);
  setTrimmed(article, "");
  setReplyModel(article, provider, model);
  setReplyStatus(article, "streaming");
}

/** A reply's saved state (the JSON of /m/<id>/, chat.views.message_detail) onto its article. */
export function applyMessage(article, message) {
  setReplyModel(article, message.provider, message.model);
  const thinking = message.status === "streaming" && Boolean(message.reasoning) && !message.content;
  setReasoning(article, message.reasoning, { ms: message.reasoning_ms ?? null, thinking });
  setReplySource(article, message.content);
  setReplyNotice(article, message.notice);
  setReplyActions(article, {
    canContinue: message.can_continue,
    canRetry: message.status === "error" || message.status === "incomplete",
  });
  if (message.status !== "streaming" && message.html) setReplyHtml(article, message.html);
  else setReplyPlainText(article, message.content);
  setReplyStatus(article, message.status);
  setReplyError(article, message.error, message.error_detail);
  setReplyTokens(article, message.input_tokens, message.output_tokens, message.reasoning_tokens);
}

// --- Code blocks and long messages ----------------------------------------------------------

/** "Copy code" on each code block under `root`: the code alone, without the fences. */
export function addCodeCopyButtons(root) {
  for (const pre of root.querySelectorAll("[data-content] pre")) {
    if (pre.parentElement?.classList.contains("code-wrap")) continue;
    if (pre.closest(".stream-text")) continue; // still being written
    const wrapper = document.createElement("div");
    wrapper.className = "code-wrap";
    pre.replaceWith(wrapper);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "chip code-copy";
    button.dataset.action = "copy-code";
    button.textContent = i18n.copyCode;
    wrapper.append(button, pre);
  }
}

// Long messages fold to a few screens' worth with "Show more".
const COLLAPSE_PX = 640;

/** Fold every long finished message under `root` (once each). */
export function collapseLong(root) {
  for (const content of root.querySelectorAll("article.msg [data-content]")) {
    const article = content.closest("article.msg");
    if (article.dataset.status === "streaming" || content.dataset.collapsible) continue;
    if (content.scrollHeight <= COLLAPSE_PX * 1.25) continue;
    content.dataset.collapsible = "true";
    content.classList.add("is-collapsed");
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "chip show-more";
    toggle.dataset.action = "toggle-length";
    toggle.setAttribute("aria-expanded", "false");
    toggle.textContent = i18n.showMore;
    content.after(toggle);
  }
}

export function toggleLength(button) {
  const content = button.previousElementSibling;
  const collapsed = content.classList.toggle("is-collapsed");
  button.textContent = collapsed ? i18n.showMore : i18n.showLess;
  button.setAttribute("aria-expanded", String(!collapsed));
  if (collapsed) button.closest("article.msg").scrollIntoView({ block: "nearest" });
}
