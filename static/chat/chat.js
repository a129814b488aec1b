// The chat page: send a message, stream the reply (Server-Sent Events read by hand from a
// fetch() body), Stop, Regenerate, Edit, Copy, the sidebar and the dialogs.
// A small vanilla module, no build step. Model text is only ever inserted as text; the
// only HTML put into the page is the server's sanitized rendering of a finished reply.

const app = document.getElementById("app");

// --- Helpers -----------------------------------------------------------------------------

const i18n = document.getElementById("chat-i18n")?.dataset ?? {};

function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value ?? "";
}

function urlFor(pattern, id) {
  // Patterns come from {% url 'name' 0 %}: swap the 0 segment for the id.
  return pattern.replace("/0/", `/${id}/`);
}

function postForm(url, fields, signal) {
  return fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
      "X-CSRFToken": csrfToken(),
      "X-Requested-With": "fetch",
    },
    body: new URLSearchParams(fields),
    credentials: "same-origin",
    signal,
  });
}

async function errorText(response) {
  try {
    const data = await response.json();
    if (data && typeof data.error === "string" && data.error) return data.error;
  } catch {
    // not JSON: fall through
  }
  return `${response.status} ${response.statusText}`.trim();
}

// The base direction of a text by its first strong character (UAX #9, rule P2), skipping
// code and links; the same rule as chat/textdir.py on the server.
const RTL_SCRIPT = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}]/u;

function textDirection(text) {
  const prose = text.slice(0, 2000).replace(/```[\s\S]*?(```|$)|`[^`]*`|https?:\/\/\S+/g, " ");
  const first = prose.match(/\p{L}/u);
  return first && RTL_SCRIPT.test(first[0]) ? "rtl" : "ltr";
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Server-Sent Events from a fetch() response body: yields {event, data}.
async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue; // heartbeat / comment
          const colon = line.indexOf(":");
          const field = colon === -1 ? line : line.slice(0, colon);
          let value = colon === -1 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "event") event = value;
          else if (field === "data") data.push(value);
        }
        if (!data.length) continue;
        let parsed;
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch {
          continue;
        }
        yield { event, data: parsed };
      }
    }
  } finally {
    reader.releaseLock();
  }
}

// --- Page-wide bits (every page) ---------------------------------------------------------

function initFlash() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-dismiss]");
    if (button) button.closest("li")?.remove();
  });
}

initFlash();

// --- The chat page -----------------------------------------------------------------------

if (app) initChat();

function initChat() {
  const thread = document.getElementById("thread");
  const threadInner = document.getElementById("thread-inner");
  const composer = document.getElementById("composer");
  const input = document.getElementById("message-input");
  const select = document.getElementById("model-select");
  const sendButton = document.getElementById("send-button");
  const stopButton = document.getElementById("stop-button");
  const composerError = document.getElementById("composer-error");
  const titleEl = document.getElementById("conversation-title");
  const conversationList = document.getElementById("conversation-list");
  const urls = app.dataset;

  const providerLabels = {};
  for (const group of select.querySelectorAll("optgroup[data-provider]")) {
    providerLabels[group.dataset.provider] = group.dataset.label;
  }

  const state = {
    conversationId: urls.conversationId || "",
    replyUrl: urls.replyUrl || "",
    busy: false, // a reply is being written (streamed here or polled)
    controller: null, // AbortController of the streaming fetch
    replyId: null, // the reply being written
    stopTimer: null,
    stopRequested: false,
    pendingSettings: null, // settings chosen on a new chat, sent with its first message
  };

  // On a touch keyboard there is no Shift: Return makes a new line and Send sends.
  const touchKeyboard = window.matchMedia("(pointer: coarse)").matches && !window.matchMedia("(any-pointer: fine)").matches;
  if (touchKeyboard) {
    app.dataset.touch = "true";
    document.getElementById("composer-hint").textContent = i18n.hintTouch;
    for (const hint of document.querySelectorAll("[data-keys-hint]")) hint.textContent = i18n.hintTouch + ".";
  }

  // -- Rendering --------------------------------------------------------------------------

  function modelLabel(provider, model) {
    const label = providerLabels[provider];
    return label ? `${label} · ${model}` : model;
  }

  function statusLabel(status) {
    return (
      { streaming: i18n.writing, stopped: i18n.stopped, error: i18n.error, incomplete: i18n.incomplete }[status] ?? ""
    );
  }

  function fromTemplate(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  function removeEmptyState() {
    document.getElementById("empty-state")?.remove();
  }

  function nearBottom() {
    return thread.scrollHeight - thread.scrollTop - thread.clientHeight < 120;
  }

  function scrollToBottom(force = false) {
    if (force || nearBottom()) thread.scrollTop = thread.scrollHeight;
  }

  function addUserMessage(text) {
    removeEmptyState();
    const article = fromTemplate("tpl-user-message");
    article.querySelector("[data-content]").textContent = text;
    article.querySelector("[data-content]").dir = textDirection(text);
    threadInner.append(article);
    return article;
  }

  function addReply(provider, model) {
    removeEmptyState();
    const article = fromTemplate("tpl-reply");
    setReplyModel(article, provider, model);
    setReplyStatus(article, "streaming");
    threadInner.append(article);
    return article;
  }

  function setReplyModel(article, provider, model) {
    article.dataset.provider = provider;
    article.dataset.model = model;
    article.querySelector("[data-model-label]").textContent = modelLabel(provider, model);
  }

  function setReplyStatus(article, status) {
    article.dataset.status = status;
    article.querySelector("[data-status-label]").textContent = statusLabel(status);
    if (status === "streaming") article.setAttribute("aria-busy", "true");
    else article.removeAttribute("aria-busy");
  }

  function streamTextNode(article) {
    // The text of a reply being written, shown as plain text.
    const content = article.querySelector("[data-content]");
    let paragraph = content.querySelector(".stream-text");
    if (!paragraph) {
      content.replaceChildren();
      paragraph = document.createElement("p");
      paragraph.className = "stream-text";
      paragraph.append(document.createTextNode(""));
      content.append(paragraph);
    }
    if (!paragraph.firstChild) paragraph.append(document.createTextNode(""));
    return paragraph.firstChild;
  }

  // Long messages fold to a few screens' worth with "Show more".
  const COLLAPSE_PX = 640;

  function collapseLong(root) {
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

  function toggleLength(button) {
    const content = button.previousElementSibling;
    const collapsed = content.classList.toggle("is-collapsed");
    button.textContent = collapsed ? i18n.showMore : i18n.showLess;
    button.setAttribute("aria-expanded", String(!collapsed));
    if (collapsed) button.closest("article.msg").scrollIntoView({ block: "nearest" });
  }

  function setReplyHtml(article, html) {
    // `html` is the server's sanitized rendering (markdown.py + nh3): safe as is.
    article.querySelector("[data-content]").innerHTML = html;
    addCodeCopyButtons(article);
  }

  function replySource(article) {
    // The reply's Markdown source: what Copy copies (tables keep their pipes, code its
    // fences, math its LaTeX). While streaming, the text on screen is the source.
    const streaming = article.querySelector("[data-content] .stream-text");
    if (streaming && article.dataset.status === "streaming") return streaming.textContent;
    return article.querySelector("template[data-source]")?.content.textContent ?? "";
  }

  function setReplySource(article, text) {
    const source = article.querySelector("template[data-source]");
    if (source) source.content.replaceChildren(document.createTextNode(text || ""));
    if (text) article.querySelector("[data-content]").dir = textDirection(text);
  }

  function addCodeCopyButtons(root) {
    // "Copy code" on each code block of a reply: the code alone, without the fences.
    for (const pre of root.querySelectorAll("[data-content] pre")) {
      if (pre.parentElement?.classList.contains("code-wrap")) continue;
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

  function setReplyError(article, message, detail) {
    const error = article.querySelector("[data-error]");
    error.textContent = message || "";
    error.hidden = !message;
    const detailEl = article.querySelector("[data-error-detail]");
    if (detailEl) {
      detailEl.textContent = detail || "";
      detailEl.hidden = !detail;
    }
  }

  function setTrimmed(article, note) {
    // "8 earlier messages were left out to fit the model's context." (worded by the server)
    const el = article.querySelector("[data-trimmed]");
    el.textContent = note || "";
    el.hidden = !note;
  }

  function setReplyNotice(article, notice) {
    const el = article.querySelector("[data-notice]");
    el.textContent = notice || "";
    el.hidden = !notice;
  }

  function setReplyActions(article, { canContinue = false, canRetry = false } = {}) {
    article.querySelector("[data-action=continue]").hidden = !canContinue;
    article.querySelector("[data-action=retry]").hidden = !canRetry;
  }

  function appendReasoning(article, text) {
    const block = article.querySelector("[data-reasoning]");
    block.hidden = false;
    const body = block.querySelector("[data-reasoning-text]");
    body.append(document.createTextNode(text));
    if (body.textContent.length < 400) body.dir = textDirection(body.textContent);
  }

  function setReasoning(article, text) {
    const block = article.querySelector("[data-reasoning]");
    block.querySelector("[data-reasoning-text]").textContent = text || "";
    block.hidden = !text;
  }

  function setReplyTokens(article, input, output) {
    const tokens = article.querySelector("[data-tokens]");
    tokens.textContent =
      output === null || output === undefined
        ? ""
        : format(i18n.tokens, { input: input ?? 0, output });
  }

  function applyMessage(article, message) {
    // A reply's saved state (from /m/<id>/) onto its article.
    if (message.provider) setReplyModel(article, message.provider, message.model);
    setReasoning(article, message.reasoning);
    setReplySource(article, message.content);
    setReplyNotice(article, message.notice);
    setReplyActions(article, {
      canContinue: message.can_continue,
      canRetry: message.status === "error" || message.status === "incomplete",
    });
    if (message.status === "streaming") {
      const text = streamTextNode(article);
      if (text.data !== message.content) text.data = message.content;
    } else if (message.html) {
      setReplyHtml(article, message.html);
    } else if (message.content) {
      streamTextNode(article).data = message.content;
    }
    setReplyStatus(article, message.status);
    setReplyError(article, message.error, message.error_detail);
    setReplyTokens(article, message.input_tokens, message.output_tokens);
  }

  function refreshLastActions() {
    // Regenerate on the last reply, Edit on the last user message, never while busy.
    for (const button of threadInner.querySelectorAll("[data-action=regenerate], [data-action=edit]")) {
      button.hidden = true;
    }
    // Only the latest messages can be regenerated or edited: not on a page of older ones.
    if (state.busy || app.dataset.viewingEarlier === "true") return;
    const articles = threadInner.querySelectorAll("article.msg");
    const last = articles[articles.length - 1];
    if (last?.dataset.role === "assistant") {
      last.querySelector("[data-action=regenerate]").hidden = false;
    }
    const users = threadInner.querySelectorAll("article.msg-user");
    const lastUser = users[users.length - 1];
    if (lastUser && !lastUser.querySelector(".edit-form")) {
      lastUser.querySelector("[data-action=edit]").hidden = false;
    }
  }

  function setBusy(busy) {
    state.busy = busy;
    stopButton.hidden = !busy;
    sendButton.hidden = busy;
    composer.classList.toggle("is-busy", busy);
    refreshLastActions();
    if (!busy) stopButton.disabled = false;
  }

  function showComposerError(message) {
    composerError.textContent = message;
    composerError.hidden = !message;
  }

  function setTitle(title) {
    if (!title) return;
    titleEl.textContent = title;
    document.title = `${title} · ${urls.siteTitle}`;
  }

  function upsertSidebarEntry(id, title) {
    // Put the current conversation first in the sidebar (it was just updated).
    if (!conversationList) return;
    conversationList.querySelector(".conv-empty")?.remove();
    let item = conversationList.querySelector(`li[data-conversation-id="${id}"]`);
    if (!item) {
      item = fromTemplate("tpl-conversation");
      item.dataset.conversationId = id;
      const link = item.querySelector(".conv-link");
      link.id = `conv-title-${id}`;
      link.href = urlFor(urls.conversationUrl, id);
      for (const button of item.querySelectorAll("button[data-action]")) {
        button.id = `conv-${button.dataset.action}-${id}`;
        button.setAttribute("aria-labelledby", `${button.id} ${link.id}`);
      }
    }
    const link = item.querySelector(".conv-link");
    if (title) {
      link.textContent = title;
      link.dataset.title = title;
    } else if (!link.textContent) {
      link.textContent = i18n.newChat;
    }
    for (const other of conversationList.querySelectorAll("li.is-current")) {
      other.classList.remove("is-current");
      other.querySelector(".conv-link")?.removeAttribute("aria-current");
    }
    item.classList.add("is-current");
    link.setAttribute("aria-current", "page");
    conversationList.prepend(item);
  }

  // -- Streaming a reply ------------------------------------------------------------------

  function selectedModel() {
    const value = select.value || "";
    const split = value.indexOf("::");
    if (split === -1) return null;
    return { provider: value.slice(0, split), model: value.slice(split + 2) };
  }

  function adoptConversation(response) {
    // The first message of a new chat created the conversation (and nothing was created
    // before the server accepted the message): take its address.
    const id = response.headers.get("X-Conversation-Id");
    if (!id) return;
    state.conversationId = id;
    state.replyUrl = response.headers.get("X-Reply-Url");
    app.dataset.conversationId = id;
    history.replaceState(null, "", response.headers.get("X-Conversation-Url"));
    document.getElementById("settings-form").action = urlFor(urls.settingsUrl, id);
    state.pendingSettings = null;
    document.getElementById("settings-note")?.remove();
  }

  async function showRefusal(response) {
    // The server refused the request; nothing was saved. A conversation deleted in
    // another tab gets a way out, and leaves the sidebar.
    let data = null;
    try {
      data = await response.clone().json();
    } catch {
      data = null;
    }
    if (data?.gone) {
      showComposerError(data.error);
      const link = document.createElement("a");
      link.href = urls.indexUrl || "/";
      link.textContent = i18n.goneLink;
      composerError.append(" ", link);
      conversationList?.querySelector(`li[data-conversation-id="${state.conversationId}"]`)?.remove();
      return;
    }
    showComposerError(await errorText(response));
  }

  // Ask for a reply. `before` runs once the server accepted the request (2xx) and
  // returns the reply's article; until then nothing typed is lost.
  async function requestReply(fields, before) {
    const choice = selectedModel();
    if (!choice) {
      showComposerError(i18n.noModel);
      return false;
    }
    showComposerError("");
    setBusy(true);
    state.stopRequested = false;
    state.replyId = null;
    const controller = new AbortController();
    state.controller = controller;
    let article = null;
    let finished = false;
    try {
      const url = state.replyUrl || urls.newReplyUrl;
      const extra = state.replyUrl ? {} : state.pendingSettings ?? {};
      const response = await postForm(url, { ...extra, ...fields, ...choice }, controller.signal);
      if (!response.ok) {
        await showRefusal(response);
        return false;
      }
      adoptConversation(response);
      article = before(choice);
      setReplyNotice(article, "");
      setReplyError(article, "");
      setReplyActions(article);
      scrollToBottom(true);
      for await (const { event, data } of readEvents(response)) {
        if (event === "start") {
          state.replyId = data.message_id;
          article.dataset.messageId = data.message_id;
          setReplyModel(article, data.provider, data.model);
          const userArticle = article.previousElementSibling;
          if (userArticle?.dataset.role === "user") userArticle.dataset.messageId = data.user_message_id;
          setTitle(data.title);
          upsertSidebarEntry(state.conversationId, data.title);
          setTrimmed(article, data.trimmed_note);
          if (state.stopRequested) requestStop();
        } else if (event === "delta") {
          const node = streamTextNode(article);
          node.appendData(data.text);
          if (node.length < 400) article.querySelector("[data-content]").dir = textDirection(node.data);
          scrollToBottom();
        } else if (event === "reasoning") {
          appendReasoning(article, data.text);
          scrollToBottom();
        } else if (event === "done") {
          finished = true;
          setReplySource(article, replySource(article));
          if (data.html) setReplyHtml(article, data.html);
          setReplyModel(article, data.provider, data.model);
          setReplyStatus(article, data.status);
          article.dataset.finishReason = data.finish_reason || "";
          setReplyNotice(article, data.notice);
          setReplyActions(article, { canContinue: data.can_continue, canRetry: data.status === "incomplete" });
          setReplyTokens(article, data.input_tokens, data.output_tokens);
          collapseLong(article.parentElement);
          scrollToBottom();
        } else if (event === "error") {
          finished = true;
          setReplySource(article, replySource(article));
          if (data.partial_html) setReplyHtml(article, data.partial_html);
          else if (!streamTextNode(article).data) article.querySelector("[data-content]").replaceChildren();
          setReplyStatus(article, data.status || "error");
          setReplyError(article, data.message, data.detail);
          setReplyActions(article, { canRetry: true, canContinue: Boolean(data.can_continue) });
          scrollToBottom();
        }
      }
      return true;
    } catch (error) {
      if (!article) {
        // Nothing was accepted: keep the typed text and say why.
        if (error.name !== "AbortError") showComposerError(i18n.networkError);
        return false;
      }
      return true;
    } finally {
      clearTimeout(state.stopTimer);
      state.controller = null;
      if (article && !finished) await settleReply(article);
      state.replyId = null;
      setBusy(false);
    }
  }

  async function settleReply(article) {
    // The stream ended without "done" (Stop aborted it, or the connection dropped): show
    // what the server saved, keeping the partial text on screen meanwhile.
    const id = article.dataset.messageId;
    if (state.stopRequested) setReplyStatus(article, "stopped");
    if (!id) {
      if (!state.stopRequested) setReplyError(article, i18n.streamLost);
      setReplyStatus(article, state.stopRequested ? "stopped" : "error");
      return;
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const response = await fetch(urlFor(urls.messageUrl, id), { credentials: "same-origin" });
        if (response.ok) {
          const message = await response.json();
          if (message.status !== "streaming") {
            applyMessage(article, message);
            return;
          }
        }
      } catch {
        // try again
      }
      await sleep(400);
    }
    setReplyStatus(article, state.stopRequested ? "stopped" : "error");
    if (!state.stopRequested) setReplyError(article, i18n.streamLost);
  }

  function requestStop() {
    state.stopRequested = true;
    stopButton.disabled = true;
    if (state.replyId === null) {
      // Not started yet: nothing on the server to stop but the request itself.
      state.controller?.abort();
      return;
    }
    postForm(urlFor(urls.stopUrl, state.replyId), {}).catch(() => {});
    // The server answers with a "done" (status stopped); if it does not within ~2 s,
    // hang up: the server then saves the partial reply as stopped.
    clearTimeout(state.stopTimer);
    state.stopTimer = setTimeout(() => state.controller?.abort(), 2000);
  }

  async function send() {
    if (state.busy) return;
    const text = input.value.trim();
    if (!text) {
      input.focus();
      return;
    }
    await requestReply({ action: "send", content: text }, (choice) => {
      input.value = "";
      autosize();
      const userArticle = addUserMessage(text);
      collapseLong(userArticle.parentElement);
      return addReply(choice.provider, choice.model);
    });
  }

  function retry(replyArticle) {
    // Answer again the question of a failed reply, in its place (any failed reply).
    if (state.busy || !replyArticle.dataset.messageId) return;
    requestReply({ action: "retry", reply_id: replyArticle.dataset.messageId }, (choice) => {
      resetReply(replyArticle, choice);
      return replyArticle;
    });
  }

  function resetReply(article, choice) {
    article.querySelector("[data-content]").replaceChildren();
    setReasoning(article, "");
    setReplySource(article, "");
    setReplyTokens(article, null, null);
    setReplyModel(article, choice.provider, choice.model);
    setReplyStatus(article, "streaming");
  }

  function continueReply(replyArticle) {
    // Ask the model to go on with a reply cut by the token limit: the new text is
    // appended to the same reply.
    if (state.busy || !replyArticle.dataset.messageId) return;
    const sourceText = replySource(replyArticle);
    requestReply({ action: "continue", reply_id: replyArticle.dataset.messageId }, (choice) => {
      replyArticle.querySelector("[data-content]").replaceChildren();
      streamTextNode(replyArticle).data = sourceText;
      setReplyModel(replyArticle, choice.provider, choice.model);
      setReplyStatus(replyArticle, "streaming");
      return replyArticle;
    });
  }

  function regenerate(replyArticle) {
    if (state.busy) return;
    requestReply({ action: "regenerate", content: "" }, (choice) => {
      replyArticle.remove();
      return addReply(choice.provider, choice.model);
    });
  }

  function startEdit(userArticle) {
    if (state.busy || userArticle.querySelector(".edit-form")) return;
    const content = userArticle.querySelector("[data-content]");
    const form = document.createElement("form");
    form.className = "edit-form";
    const label = document.createElement("label");
    label.className = "visually-hidden";
    label.htmlFor = "edit-input";
    label.textContent = i18n.editLabel;
    const textarea = document.createElement("textarea");
    textarea.id = "edit-input";
    textarea.value = content.textContent;
    textarea.rows = Math.min(10, Math.max(2, textarea.value.split("\n").length));
    const buttons = document.createElement("div");
    buttons.className = "edit-actions";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "button";
    cancel.textContent = i18n.cancel;
    const save = document.createElement("button");
    save.type = "submit";
    save.className = "button button-primary";
    save.textContent = i18n.saveSend;
    buttons.append(cancel, save);
    form.append(label, textarea, buttons);
    userArticle.classList.add("is-editing");
    content.hidden = true;
    content.after(form);
    refreshLastActions();
    textarea.focus();

    const close = () => {
      form.remove();
      content.hidden = false;
      userArticle.classList.remove("is-editing");
      refreshLastActions();
    };
    cancel.addEventListener("click", close);
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = textarea.value.trim();
      if (!text || state.busy) return;
      requestReply({ action: "edit", content: text }, (choice) => {
        close();
        content.textContent = text;
        while (userArticle.nextElementSibling) userArticle.nextElementSibling.remove();
        return addReply(choice.provider, choice.model);
      });
    });
  }

  // -- Copy -------------------------------------------------------------------------------

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // No clipboard API (plain http on another host) or no permission: the old way.
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.append(area);
      area.select();
      let ok = false;
      try {
        ok = document.execCommand("copy");
      } catch {
        ok = false;
      }
      area.remove();
      return ok;
    }
  }

  async function copyMessage(button) {
    // The Markdown source of a reply (or the text of a user message), not the rendering.
    const article = button.closest("article.msg");
    const text =
      article.dataset.role === "assistant" ? replySource(article) : article.querySelector("[data-content]").textContent;
    flashCopied(button, await copyText(text.trim()), i18n.copy);
  }

  async function copyCode(button) {
    const code = button.parentElement.querySelector("pre");
    flashCopied(button, await copyText(code ? code.textContent : ""), i18n.copyCode);
  }

  function flashCopied(button, ok, label) {
    button.textContent = ok ? i18n.copied : i18n.copyFailed;
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  }

  // -- Replies still being written after a reload -----------------------------------------

  const FOLLOW_GIVE_UP_POLLS = 120; // two minutes without new text: the writer is gone

  async function follow(article) {
    // Poll the reply (written by another tab or a request cut off by the reload) once a
    // second until it is no longer streaming.
    const id = article.dataset.messageId;
    if (!id) return;
    setBusy(true);
    state.replyId = Number(id);
    let lastContent = null;
    let idlePolls = 0;
    try {
      while (idlePolls < FOLLOW_GIVE_UP_POLLS) {
        await sleep(1000);
        let message;
        try {
          const response = await fetch(urlFor(urls.messageUrl, id), { credentials: "same-origin" });
          if (!response.ok) {
            idlePolls++;
            continue;
          }
          message = await response.json();
        } catch {
          idlePolls++;
          continue;
        }
        applyMessage(article, message);
        scrollToBottom();
        if (message.status !== "streaming") return;
        idlePolls = message.content === lastContent ? idlePolls + 1 : 0;
        lastContent = message.content;
      }
      setReplyStatus(article, "error");
      setReplyError(article, i18n.streamLost);
    } finally {
      state.replyId = null;
      setBusy(false);
    }
  }

  // -- The model menu: a filter when the list is long -------------------------------------

  const modelFilter = document.getElementById("model-filter");
  const MODEL_FILTER_FROM = 12;
  const modelOptions = [...select.querySelectorAll("option[value]")].filter((option) => option.value);
  if (modelFilter && modelOptions.length > MODEL_FILTER_FROM) {
    modelFilter.hidden = false;
    modelFilter.addEventListener("input", () => {
      // Every word typed must appear in "Provider · model"; the first match is chosen.
      const words = modelFilter.value.toLowerCase().split(/\s+/).filter(Boolean);
      let first = null;
      for (const option of modelOptions) {
        const match = words.every((word) => option.textContent.toLowerCase().includes(word));
        option.hidden = !match;
        if (match && !first) first = option;
      }
      for (const group of select.querySelectorAll("optgroup")) {
        group.hidden = ![...group.querySelectorAll("option")].some((option) => !option.hidden);
      }
      if (first && select.selectedOptions[0]?.hidden) {
        select.value = first.value;
        select.dispatchEvent(new Event("change"));
      }
    });
    modelFilter.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        select.focus();
      }
    });
  }

  // -- Settings the chosen model does not take ---------------------------------------------

  const temperatureInput = document.getElementById("id_temperature");

  function syncModelSettings() {
    // A setting the chosen model does not take is disabled, with the reason.
    if (!temperatureInput) return;
    const reason = select.selectedOptions[0]?.dataset.noTemperature || "";
    temperatureInput.disabled = Boolean(reason);
    let note = document.getElementById("temperature-unsupported");
    if (reason && !note) {
      note = document.createElement("p");
      note.id = "temperature-unsupported";
      note.className = "field-help";
      temperatureInput.after(note);
      temperatureInput.setAttribute("aria-describedby", note.id);
    }
    if (note) {
      note.textContent = reason;
      note.hidden = !reason;
    }
  }

  select.addEventListener("change", syncModelSettings);
  syncModelSettings();

  // -- Composer ---------------------------------------------------------------------------

  const fieldSizing = window.CSS?.supports?.("field-sizing", "content");

  function autosize() {
    if (fieldSizing) return;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !touchKeyboard) {
      event.preventDefault();
      send();
    }
  });
  input.addEventListener("input", () => {
    autosize();
    if (!composerError.hidden && input.value) showComposerError("");
  });
  stopButton.addEventListener("click", () => {
    if (state.controller) {
      requestStop();
    } else if (state.replyId !== null) {
      // Following a reply after a reload: ask the server; the poll sees the outcome.
      stopButton.disabled = true;
      postForm(urlFor(urls.stopUrl, state.replyId), {}).catch(() => {});
    }
  });

  async function loadEarlier(link) {
    // Older messages arrive as server-rendered HTML and go above the first one, keeping
    // the reader's place; the fragment brings its own link to the page above.
    link.setAttribute("aria-disabled", "true");
    try {
      const response = await fetch(link.dataset.fragmentUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const fragment = document.createRange().createContextualFragment(await response.text());
      const height = thread.scrollHeight;
      link.replaceWith(fragment);
      thread.scrollTop += thread.scrollHeight - height;
      addCodeCopyButtons(threadInner);
      collapseLong(threadInner);
      refreshLastActions();
    } catch {
      link.removeAttribute("aria-disabled");
      window.location.href = link.href;
    }
  }

  thread.addEventListener("click", (event) => {
    const earlier = event.target.closest("a[data-load-earlier]");
    if (earlier) {
      event.preventDefault();
      if (earlier.getAttribute("aria-disabled") !== "true") loadEarlier(earlier);
      return;
    }
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const article = button.closest("article.msg");
    const action = button.dataset.action;
    if (action === "copy") copyMessage(button);
    else if (action === "copy-code") copyCode(button);
    else if (action === "toggle-length") toggleLength(button);
    else if (action === "retry") retry(article);
    else if (action === "continue") continueReply(article);
    else if (action === "regenerate") regenerate(article);
    else if (action === "edit") startEdit(article);
  });

  // -- Sidebar and dialogs ----------------------------------------------------------------

  const sidebar = document.getElementById("sidebar");
  const backdrop = document.querySelector(".sidebar-backdrop");
  const toggle = document.querySelector("[data-sidebar-toggle]");

  function setSidebar(open) {
    app.classList.toggle("sidebar-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    backdrop.hidden = !open;
    if (open) sidebar.querySelector("a, button, input")?.focus();
    else if (sidebar.contains(document.activeElement)) toggle.focus();
  }

  toggle.addEventListener("click", () => setSidebar(!app.classList.contains("sidebar-open")));
  for (const closer of document.querySelectorAll("[data-sidebar-close]")) {
    closer.addEventListener("click", () => setSidebar(false));
  }
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && app.classList.contains("sidebar-open")) setSidebar(false);
  });

  const renameDialog = document.getElementById("rename-dialog");
  const deleteDialog = document.getElementById("delete-dialog");

  conversationList?.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const item = button.closest("li[data-conversation-id]");
    const id = item.dataset.conversationId;
    const link = item.querySelector(".conv-link");
    const title = link.dataset.title || link.textContent.trim();
    if (button.dataset.action === "rename") {
      renameDialog.querySelector("form").action = urlFor(urls.renameUrl, id);
      const field = renameDialog.querySelector("input[name=title]");
      field.value = item.querySelector(".conv-link").dataset.title || "";
      renameDialog.showModal();
      field.select();
    } else if (button.dataset.action === "delete") {
      deleteDialog.querySelector("form").action = urlFor(urls.deleteUrl, id);
      deleteDialog.querySelector("[data-dialog-title]").textContent = title;
      deleteDialog.showModal();
    }
  });

  function dialogError(dialog, message) {
    const el = dialog.querySelector("[data-dialog-error]");
    el.textContent = message || "";
    el.hidden = !message;
  }

  renameDialog.querySelector("form").addEventListener("submit", async (event) => {
    // Saved without leaving the page; a refusal shows in the dialog, which stays open.
    event.preventDefault();
    const form = event.target;
    const title = form.querySelector("input[name=title]");
    if (!title.value.trim()) {
      dialogError(renameDialog, i18n.titleEmpty);
      title.focus();
      return;
    }
    try {
      const response = await postForm(form.action, { title: title.value });
      if (!response.ok) {
        dialogError(renameDialog, await errorText(response));
        title.focus();
        return;
      }
      const data = await response.json();
      const id = form.action.match(/\/c\/(\d+)\//)?.[1];
      const link = conversationList?.querySelector(`li[data-conversation-id="${id}"] .conv-link`);
      if (link) {
        link.textContent = data.title;
        link.dataset.title = data.title;
      }
      if (id && id === state.conversationId) setTitle(data.title);
      dialogError(renameDialog, "");
      renameDialog.close();
    } catch {
      dialogError(renameDialog, i18n.networkError);
    }
  });

  const settingsDialog = document.getElementById("settings-dialog");
  settingsDialog.querySelector("form").addEventListener("submit", async (event) => {
    // On a new chat the settings wait for its first message; otherwise they are saved now.
    event.preventDefault();
    const form = event.target;
    if (!form.reportValidity()) return;
    const fields = Object.fromEntries(
      [...new FormData(form).entries()].filter(([name]) => name !== "csrfmiddlewaretoken"),
    );
    // Kept while disabled for a model that takes none: another model may use it.
    if (temperatureInput?.disabled) fields.temperature = temperatureInput.value;
    if (!state.replyUrl) {
      state.pendingSettings = fields;
      dialogError(settingsDialog, "");
      settingsDialog.close();
      let note = document.getElementById("settings-note");
      if (!note) {
        note = document.createElement("p");
        note.id = "settings-note";
        note.className = "composer-note";
        composer.prepend(note);
      }
      note.textContent = i18n.settingsPending;
      return;
    }
    try {
      const response = await postForm(form.action, fields);
      if (!response.ok) {
        dialogError(settingsDialog, await errorText(response));
        return;
      }
      dialogError(settingsDialog, "");
      settingsDialog.close();
    } catch {
      dialogError(settingsDialog, i18n.networkError);
    }
  });

  for (const opener of document.querySelectorAll("[data-open-dialog]")) {
    opener.addEventListener("click", () => document.getElementById(opener.dataset.openDialog)?.showModal());
  }
  document.addEventListener("click", (event) => {
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog")?.close();
    // A click on the backdrop (the dialog element itself, outside its form) closes it.
    if (event.target instanceof HTMLDialogElement && event.target.open) {
      const box = event.target.getBoundingClientRect();
      const inside =
        event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) event.target.close();
    }
  });

  // -- Opening a search result -------------------------------------------------------------

  function showSearchHit() {
    // /c/<id>/?q=...&hit=<message id>: scroll to the message that matched, and mark every
    // match of the query in the thread (CSS Custom Highlight API: no change to the HTML).
    const params = new URLSearchParams(window.location.search);
    const hit = params.get("hit");
    const query = (params.get("q") || "").trim();
    if (hit && /^\d+$/.test(hit)) {
      const article = threadInner.querySelector(`article.msg[data-message-id="${hit}"]`);
      if (article) {
        article.querySelector("[data-content]").classList.remove("is-collapsed");
        article.classList.add("is-hit");
        article.scrollIntoView({ block: "center" });
      }
    }
    if (!query || !window.CSS?.highlights || typeof Highlight === "undefined") return;
    const needle = query.toLowerCase().replaceAll("ё", "е");
    const ranges = [];
    for (const content of threadInner.querySelectorAll("article.msg [data-content]")) {
      const walker = document.createTreeWalker(content, NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) {
        const node = walker.currentNode;
        const hay = node.data.toLowerCase().replaceAll("ё", "е");
        if (hay.length !== node.data.length) continue; // a case change altered the length
        let at = hay.indexOf(needle);
        while (at !== -1) {
          const range = new Range();
          range.setStart(node, at);
          range.setEnd(node, at + needle.length);
          ranges.push(range);
          at = hay.indexOf(needle, at + needle.length);
        }
      }
    }
    if (ranges.length) CSS.highlights.set("search-hit", new Highlight(...ranges));
  }

  // -- Start ------------------------------------------------------------------------------

  autosize();
  addCodeCopyButtons(threadInner);
  collapseLong(threadInner);
  refreshLastActions();
  const streaming = threadInner.querySelector("article.msg-reply[data-status=streaming]");
  if (streaming) follow(streaming);
  scrollToBottom(true);
  showSearchHit();
  if (!streaming && window.matchMedia("(min-width: 800px)").matches) input.focus();
  app.dataset.ready = "true"; // every handler is bound (tests wait for this)
}
