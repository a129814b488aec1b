// The chat page: one conversation (or a new chat), its thread and composer. Asks for
// replies (send, Retry, Continue, Regenerate, Edit), follows the replies being written
// (each a ReplyStream; after a reload too), Stop, the queue of messages sent meanwhile,
// and the focus rules:
//   - after Stop, the message box;
//   - after Regenerate or an edit's "Save and send", Stop while the reply is written,
//     then the message box;
//   - cancelling an edit, that message's Edit button.
// Queued messages are never sent behind the person's back and never lost: Stop puts them
// back in the message box; leaving the page keeps them (sessionStorage, this tab) for that
// conversation's message box, and the next page says so (a notice, a mark in the list).

import { Composer, MessageQueue } from "./composer.js";
import { CompareChoice, pickButton, stopOneButton } from "./compare.js";
import { copyCode, copyMessage } from "./copy.js";
import { initDialogs } from "./dialogs.js";
import { csrfToken, errorText, format, i18n, postForm, textDirection, urlFor } from "./dom.js";
import { loadMarkdown } from "./markdown-live.js";
import {
  addCodeCopyButtons,
  addReply,
  addUserMessage,
  collapseLong,
  replySource,
  resetReply,
  setReplyActions,
  setReplyError,
  setReplyModel,
  setReplyNotice,
  setReplyStatus,
  toggleLength,
} from "./messages.js";
import { notify } from "./notices.js";
import { ReplyStream } from "./reply-stream.js";
import { showSearchHit } from "./search-hit.js";
import { Sidebar } from "./sidebar.js";
import { TemporaryChat } from "./temporary.js";

const NEAR_BOTTOM_PX = 120;
const QUEUED_KEY = "chat-queued:"; // + conversation id ("new"): JSON list of texts, oldest first
const LEFT_KEY = "chat-queued-left"; // JSON {id, title}: the page just left with texts kept
const GONE_KEY = "chat-gone"; // JSON {title}: left a page brought back whose conversation was deleted
const EDIT_MAX_HEIGHT_PX = 384; // the edit box grows with its text up to this (chat.css: 24rem)

/** The JSON value stored under `key` in this tab's sessionStorage (null: none or unreadable). */
function readStored(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key) || "null");
  } catch {
    return null;
  }
}

/** Store `value` as JSON under `key` (null removes it); storage full or disabled: nothing. */
function writeStored(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or disabled: nothing more to do
  }
}

/** The conversation ids ("new" for a new chat) with queued texts kept in this tab. */
function keptQueueIds() {
  try {
    return Object.keys(sessionStorage)
      .filter((key) => key.startsWith(QUEUED_KEY))
      .map((key) => key.slice(QUEUED_KEY.length));
  } catch {
    return [];
  }
}

/** Size a textarea to its text, up to EDIT_MAX_HEIGHT_PX (where CSS field-sizing cannot). */
function fitToText(textarea) {
  if (window.CSS?.supports?.("field-sizing", "content")) return;
  textarea.style.height = "auto";
  textarea.style.height = `${Math.min(textarea.scrollHeight + 2, EDIT_MAX_HEIGHT_PX)}px`;
}

export class ChatPage {
  /** @param {HTMLElement} app the #app element, whose data attributes hold the URLs */
  constructor(app) {
    this.app = app;
    this.urls = app.dataset;
    this.thread = document.getElementById("thread");
    this.threadInner = document.getElementById("thread-inner");
    this.titleEl = document.getElementById("conversation-title");
    this.conversationId = this.urls.conversationId || "";
    this.replyUrl = this.urls.replyUrl || "";
    this.pendingSettings = null; // settings chosen on a new chat, sent with its first message
    this.pending = new Set(); // streams asked for, not accepted yet
    this.streams = new Set(); // streams being written
    this.seenPending = false; // a reply finished while the page was hidden
    this.keepBox = false; // the message box holds queued texts put back there (kept on leaving)
    this.branchChanged = false; // an edit or a regenerate made a new version (arrows to show)

    this.composer = new Composer({ onSend: () => this.send() });
    this.compare = new CompareChoice(this.composer);
    this.temporary = new TemporaryChat(this); // a chat never saved (temporary.js)
    this.queue = new MessageQueue(this.threadInner);
    this.sidebar = new Sidebar({
      urls: this.urls,
      currentId: () => this.conversationId,
      onCurrentTitle: (title) => this.setTitle(title),
    });
    initDialogs({
      urls: this.urls,
      sidebar: this.sidebar,
      onRenamed: (id, title) => {
        this.sidebar.setTitle(id, title);
        if (id === this.conversationId) this.setTitle(title);
      },
      isNewChat: () => !this.replyUrl,
      onPendingSettings: (fields) => this.setPendingSettings(fields),
    });

    this.composer.stopButton.addEventListener("click", () => this.stop());
    this.thread.addEventListener("click", (event) => this.onThreadClick(event));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.seenPending) this.markSeen();
    });
    this.composer.input.addEventListener("input", () => {
      if (!this.composer.text()) this.keepBox = false;
    });
    // Messages still queued when the page goes away (reload, another page) come back in
    // the message box next time: never sent behind the person's back, never lost.
    window.addEventListener("pagehide", () => this.keepQueued());
    window.addEventListener("pageshow", (event) => {
      const gone = readStored(GONE_KEY);
      if (gone) {
        // The page before this one was a deleted conversation, brought back by Back.
        writeStored(GONE_KEY, null);
        notify(format(i18n.conversationGone, { title: gone.title || i18n.newChat }));
      }
      if (!event.persisted) return;
      // Back as it was (the back-forward cache): the queue is still here.
      this.restoreQueued(false);
      if (readStored(LEFT_KEY)?.id === this.queueId()) writeStored(LEFT_KEY, null);
      // Shown without asking the server: the conversation may have been deleted since.
      this.leaveIfDeleted();
    });
    loadMarkdown().then((available) => {
      // Replies that began before the renderer was there: render them as Markdown now.
      if (available) for (const stream of this.streams) if (stream.text) stream.live.set(stream.text);
    });
  }

  /** Bind everything, follow the replies still being written, then say so (data-ready). */
  start() {
    addCodeCopyButtons(this.threadInner);
    collapseLong(this.threadInner);
    this.refreshLastActions();
    const streaming = [...this.threadInner.querySelectorAll("article.msg-reply[data-status=streaming]")];
    for (const article of streaming) this.follow(article);
    this.restoreQueued();
    this.showKeptElsewhere();
    this.scrollToBottom(true);
    showSearchHit(this.threadInner);
    if (!streaming.length && window.matchMedia("(min-width: 800px)").matches) this.composer.focus();
    this.app.dataset.ready = "true"; // every handler is bound (tests wait for this)
  }

  get busy() {
    return this.pending.size > 0 || this.streams.size > 0;
  }

  // -- Thread ------------------------------------------------------------------------------

  nearBottom() {
    const thread = this.thread;
    return thread.scrollHeight - thread.scrollTop - thread.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom(force = false) {
    if (force || this.nearBottom()) this.thread.scrollTop = this.thread.scrollHeight;
  }

  /** Run `render` (a change of the thread), staying at the bottom if the reader was there. */
  keepScrolled(render) {
    const near = this.nearBottom();
    render();
    if (near) this.scrollToBottom(true);
  }

  /** Put `nodes` at the end of the thread, before the messages still queued. */
  placeBeforeQueue(...nodes) {
    const firstQueued = this.queue.items[0]?.article;
    if (firstQueued) firstQueued.before(...nodes);
    else this.threadInner.append(...nodes);
  }

  refreshLastActions() {
    // Conversations are trees: any message can be edited (a new version beside it), any
    // reply regenerated, forked or deleted with its branch; never while a reply is written.
    const idle = !this.busy;
    for (const article of this.threadInner.querySelectorAll("article.msg:not(.is-queued)")) {
      const known = Boolean(article.dataset.messageId);
      const inCompare = Boolean(article.closest("[data-compare]"));
      const editing = Boolean(article.querySelector(".edit-form"));
      const streaming = article.dataset.status === "streaming";
      const show = (action, visible) => {
        const button = article.querySelector(`[data-action=${action}]`);
        if (button) button.hidden = !visible;
      };
      show("edit", idle && known && !editing);
      show("regenerate", idle && known && !inCompare && !streaming);
      show("fork", idle && known && !streaming);
      show("delete-branch", idle && known && !streaming && !editing);
      show("stop-one", streaming);
      for (const button of article.querySelectorAll("[data-action=branch], [data-action=pick]")) {
        button.disabled = !idle || (button.dataset.action === "branch" && !button.dataset.target);
      }
    }
  }

  /** The last message of the branch shown (what a new message follows), or "" if unknown. */
  threadLeafId() {
    if (this.threadInner.querySelector("[data-compare]")) return "";
    const articles = this.threadInner.querySelectorAll("article.msg:not(.is-queued)");
    return articles[articles.length - 1]?.dataset.messageId || "";
  }

  /** Replace the thread with a branch's page of server-rendered HTML (the queue stays). */
  showThread(html) {
    const queued = [...this.threadInner.querySelectorAll("article.is-queued")];
    const fragment = document.createRange().createContextualFragment(html);
    this.threadInner.replaceChildren(fragment, ...queued);
    this.app.dataset.viewingEarlier = "";
    addCodeCopyButtons(this.threadInner);
    collapseLong(this.threadInner);
    for (const article of this.threadInner.querySelectorAll("article.msg-reply[data-status=streaming]")) {
      this.follow(article);
    }
    this.refreshLastActions();
  }

  /** POST to a branch action's URL; the answer is the branch now shown. */
  async branchRequest(url, focusSelector = null) {
    if (this.busy) return;
    let response;
    try {
      response = await postForm(url);
    } catch {
      notify(i18n.branchFailed);
      return;
    }
    if (!response.ok) {
      notify(response.status === 404 ? i18n.branchFailed : await errorText(response));
      return;
    }
    this.showThread(await response.text());
    if (focusSelector) this.threadInner.querySelector(focusSelector)?.focus();
  }

  /** After an edit or a regenerated reply: the branch again from the server (arrows, ids). */
  async reloadBranch(leafId) {
    if (!this.conversationId || this.busy) return;
    const url = `${urlFor(this.urls.messagesUrl, this.conversationId)}${leafId ? `?leaf=${leafId}` : ""}`;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      const html = await response.text();
      if (!this.busy) this.keepScrolled(() => this.showThread(html));
    } catch {
      // The thread as the page has it stays; a reload shows the arrows.
    }
  }

  async fork(article) {
    if (this.busy || !article.dataset.messageId) return;
    try {
      const response = await postForm(urlFor(this.urls.forkUrl, article.dataset.messageId));
      if (!response.ok) {
        notify(await errorText(response));
        return;
      }
      const data = await response.json();
      window.location.href = data.url;
    } catch {
      notify(i18n.branchFailed);
    }
  }

  async deleteBranch(article) {
    if (this.busy || !article.dataset.messageId) return;
    if (!window.confirm(i18n.confirmDeleteBranch)) return;
    await this.branchRequest(urlFor(this.urls.messageDeleteUrl, article.dataset.messageId));
    notify(i18n.branchDeleted);
    this.composer.focus();
  }

  refreshBusy() {
    this.composer.setBusy(this.busy);
    this.refreshLastActions();
  }

  setTitle(title) {
    if (!title) return;
    this.titleEl.textContent = title;
    document.title = `${title} · ${this.urls.siteTitle}`;
  }

  setPendingSettings(fields) {
    this.pendingSettings = fields;
    let note = document.getElementById("settings-note");
    if (!note) {
      note = document.createElement("p");
      note.id = "settings-note";
      note.className = "composer-note";
      this.composer.form.prepend(note);
    }
    note.textContent = i18n.settingsPending;
  }

  // -- Replies -----------------------------------------------------------------------------

  newStream(article = null) {
    return new ReplyStream({
      urls: { eventsUrl: this.urls.eventsUrl || "", messageUrl: this.urls.messageUrl, stopUrl: this.urls.stopUrl },
      article,
      lostText: i18n.streamLost,
      hooks: {
        start: (stream, data) => this.onStart(stream, data),
        update: (render) => this.keepScrolled(render),
        finish: (stream) => this.onFinish(stream),
      },
    });
  }

  /** Follow a reply the page was rendered with while it was being written. */
  follow(article) {
    if (!article.dataset.messageId) return;
    const stream = this.newStream(article);
    this.streams.add(stream);
    this.refreshBusy();
    if (this.conversationId) this.sidebar.replyStarted(this.conversationId);
    stream.attach(0);
  }

  onStart(stream, data) {
    const user = stream.article.previousElementSibling;
    if (user?.dataset.role === "user" && data.user_message_id) user.dataset.messageId = data.user_message_id;
    this.setTitle(data.title);
    this.sidebar.upsert(this.conversationId, data.title);
    this.sidebar.replyStarted(this.conversationId);
  }

  onFinish(stream) {
    this.streams.delete(stream);
    this.pending.delete(stream);
    this.refreshBusy();
    if (this.conversationId) {
      this.sidebar.replyEnded(this.conversationId);
      this.markSeen();
    }
    // Stopped (in another tab, say): what was queued after it is not sent either.
    if (stream.status === "stopped") this.returnQueued();
    if (!this.busy && this.queue.size) setTimeout(() => this.sendQueued(), 0);
    else if (!this.busy && this.branchChanged) {
      // An edit or a regenerated reply made a new version: show its arrows and ids.
      const leaf = this.branchChanged === true ? stream.messageId : this.branchChanged;
      this.branchChanged = false;
      this.reloadBranch(leaf);
    }
  }

  /** Tell the server the person saw the reply that finished here (when the page is shown). */
  markSeen() {
    if (!this.urls.seenUrl || !this.conversationId) return;
    if (document.hidden) {
      this.seenPending = true;
      return;
    }
    this.seenPending = false;
    postForm(urlFor(this.urls.seenUrl, this.conversationId)).catch(() => {});
  }

  adoptConversation(response) {
    // The first message of a new chat created the conversation (and nothing was created
    // before the server accepted the message): take its address.
    const id = response.headers.get("X-Conversation-Id");
    if (!id) return;
    this.conversationId = id;
    this.replyUrl = response.headers.get("X-Reply-Url");
    this.app.dataset.conversationId = id;
    history.replaceState(null, "", response.headers.get("X-Conversation-Url"));
    document.getElementById("settings-form").action = urlFor(this.urls.settingsUrl, id);
    this.pendingSettings = null;
    document.getElementById("settings-note")?.remove();
  }

  /** Notes the server sends beside a reply (percent-encoded JSON list), as notices. */
  showNotes(header) {
    if (!header) return;
    try {
      for (const note of JSON.parse(decodeURIComponent(header))) notify(note);
    } catch {
      // a malformed header: nothing to show
    }
  }

  async showRefusal(response) {
    // The server refused the request; nothing was saved. A conversation deleted in
    // another tab gets a way out, and leaves the sidebar.
    let data = null;
    try {
      data = await response.clone().json();
    } catch {
      data = null;
    }
    if (data?.gone) {
      this.composer.showError(data.error);
      const link = document.createElement("a");
      link.href = this.urls.indexUrl || "/";
      link.textContent = i18n.goneLink;
      this.composer.error.append(" ", link);
      this.sidebar.remove(this.conversationId);
      return;
    }
    this.composer.showError(await errorText(response));
  }

  /**
   * Ask for a reply and follow it to its end. `before(choice)` runs once the server
   * accepted the request (2xx) and returns {article, text?}: the reply's article and the
   * text it already holds; until then nothing typed is lost. Resolves true when the
   * request was accepted, false when it was refused or never reached the server.
   */
  async requestReply(fields, before) {
    const choice = this.composer.selectedModel();
    if (!choice) {
      this.composer.showError(i18n.noModel);
      return false;
    }
    this.composer.showError("");
    const stream = this.newStream();
    this.pending.add(stream);
    this.refreshBusy();
    const url = this.replyUrl || this.urls.newReplyUrl;
    const extra = this.replyUrl ? {} : (this.pendingSettings ?? {});
    let result;
    try {
      result = await stream.start(url, { ...extra, ...fields, ...choice }, (response) => {
        this.pending.delete(stream);
        this.streams.add(stream);
        this.adoptConversation(response);
        this.showNotes(response.headers.get("X-Chat-Notes"));
        const { article, text = "" } = before(choice);
        setReplyNotice(article, "");
        setReplyError(article, "");
        setReplyActions(article);
        this.refreshBusy();
        this.scrollToBottom(true);
        return { article, text };
      });
    } finally {
      if (this.pending.delete(stream)) this.refreshBusy();
    }
    if (result.refused) {
      await this.showRefusal(result.refused);
      return false;
    }
    if (result.failed) {
      this.composer.showError(i18n.networkError);
      return false;
    }
    return true;
  }

  /** Ask for a send's reply: in the conversation, or in the temporary chat (temporary.js). */
  ask(fields, before) {
    return this.temporary.active ? this.temporary.ask(fields.content, before) : this.requestReply(fields, before);
  }

  stop() {
    const streams = [...this.pending, ...this.streams];
    if (!streams.length) return;
    this.composer.stopButton.disabled = true;
    this.returnQueued(); // Stop means "not now": what was queued waits in the box, unsent
    for (const stream of streams) stream.stop();
    this.composer.focus();
  }

  /** Put every queued message back in the message box, unsent, and say so. */
  returnQueued() {
    this.composer.attachments.restore(this.queue.items.flatMap((item) => item.files ?? []));
    const texts = this.queue.clear();
    if (!texts.length) return;
    for (const text of [...texts].reverse()) this.composer.restore(text);
    this.keepBox = true;
    this.refreshLastActions();
    notify(texts.length > 1 ? i18n.queuedBackMany : i18n.queuedBack);
  }

  send() {
    const text = this.composer.text();
    const files = this.composer.attachments.ready();
    if (!text && !files.length) {
      this.composer.focus();
      return;
    }
    const waiting = this.composer.attachments.pendingReason();
    if (waiting) {
      this.composer.showError(waiting);
      return;
    }
    if (this.temporary.active && !this.temporary.accepts(files)) return;
    // A double click on Send (or Enter pressed twice) before the box was emptied sends
    // the message once, not once more into the queue.
    const now = performance.now();
    if (this.busy && text === this.lastSent?.text && !files.length && now - this.lastSent.at < 1500) return;
    this.lastSent = { text, at: now };
    if (this.compare.active && !this.busy) {
      this.sendCompare(text, files);
      return;
    }
    if (this.busy) {
      // Sent when the reply being written ends; the page says so, with a way to cancel.
      this.queue.add(text, files);
      this.composer.attachments.release(files);
      this.composer.clear();
      this.keepBox = false; // now in the queue, kept from there
      this.scrollToBottom(true);
      return;
    }
    const fields = { action: "send", content: text, parent_id: this.threadLeafId(), attachments: files.map((f) => f.id) };
    this.ask(fields, (choice) => {
      this.composer.clear(text);
      this.composer.attachments.release(files);
      const user = addUserMessage(this.threadInner, text, files);
      const reply = addReply(this.threadInner, choice.provider, choice.model);
      this.placeBeforeQueue(user, reply);
      collapseLong(this.threadInner);
      return { article: reply };
    });
  }

  /**
   * Send `text` to every model picked for comparing: the server answers with the replies'
   * ids (JSON), and each is followed in its own column. Nothing typed is lost on refusal.
   */
  async sendCompare(text, files = []) {
    const body = new URLSearchParams({ action: "send", content: text, parent_id: this.threadLeafId() });
    for (const file of files) body.append("attachments", file.id);
    if (!this.replyUrl) for (const [key, value] of Object.entries(this.pendingSettings ?? {})) body.append(key, value);
    for (const choice of this.compare.fields()) body.append("compare", choice);
    this.composer.showError("");
    const marker = this.newStream();
    this.pending.add(marker); // busy until the columns exist
    this.refreshBusy();
    let response;
    try {
      response = await fetch(this.replyUrl || this.urls.newReplyUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" },
        body,
        credentials: "same-origin",
      });
    } catch {
      this.pending.delete(marker);
      this.refreshBusy();
      this.composer.showError(i18n.networkError);
      return;
    }
    this.pending.delete(marker);
    if (!response.ok) {
      this.refreshBusy();
      await this.showRefusal(response);
      return;
    }
    const data = await response.json();
    if (data.created) this.adoptConversationJson(data);
    for (const note of data.notes ?? []) notify(note);
    this.composer.clear(text);
    this.composer.attachments.release(files);
    const user = addUserMessage(this.threadInner, text, files);
    user.dataset.messageId = data.user_message_id;
    const columns = document.createElement("section");
    columns.className = "compare";
    columns.dataset.compare = "";
    for (const reply of data.replies) {
      const article = addReply(columns, reply.provider, reply.model);
      article.dataset.messageId = reply.id;
      article.querySelector(".msg-actions").append(pickButton(reply.id, reply.model), stopOneButton(reply.model));
    }
    this.placeBeforeQueue(user, columns);
    if (data.title) {
      this.setTitle(data.title);
      this.sidebar.upsert(this.conversationId, data.title);
    }
    // When all are written: the server's columns (ids, times), the question as the leaf.
    this.branchChanged = String(data.user_message_id);
    for (const article of columns.querySelectorAll("article.msg-reply")) this.follow(article);
    this.scrollToBottom(true);
  }

  /** A compare request created the conversation: take its address (as adoptConversation). */
  adoptConversationJson(data) {
    this.conversationId = String(data.conversation_id);
    this.replyUrl = data.reply_url;
    this.app.dataset.conversationId = this.conversationId;
    history.replaceState(null, "", data.url);
    document.getElementById("settings-form").action = urlFor(this.urls.settingsUrl, this.conversationId);
    this.pendingSettings = null;
    document.getElementById("settings-note")?.remove();
  }

  async sendQueued() {
    if (this.busy || !this.queue.size) return;
    const item = this.queue.next();
    const fields = { action: "send", content: item.text, attachments: (item.files ?? []).map((f) => f.id) };
    const accepted = await this.ask(fields, (choice) => {
      const reply = addReply(this.threadInner, choice.provider, choice.model);
      item.article.after(reply);
      collapseLong(this.threadInner);
      notify(i18n.queuedSent);
      return { article: reply };
    });
    if (!accepted) {
      // Refused (or the server is out of reach): every queued text goes back in the box.
      item.article.remove();
      const files = [item, ...this.queue.items].flatMap((queued) => queued.files ?? []);
      for (const text of [item.text, ...this.queue.clear()].reverse()) this.composer.restore(text);
      this.composer.attachments.restore(files);
      this.keepBox = true;
      this.refreshLastActions();
    }
  }

  retry(article) {
    // Answer again the question of a failed reply, in its place (any failed reply).
    if (this.busy || !article.dataset.messageId) return;
    this.requestReply({ action: "retry", reply_id: article.dataset.messageId }, (choice) => {
      resetReply(article, choice.provider, choice.model);
      return { article };
    });
  }

  continueReply(article) {
    // Ask the model to go on with a reply cut by the token limit: the new text is
    // appended to the same reply.
    if (this.busy || !article.dataset.messageId) return;
    const text = replySource(article);
    this.requestReply({ action: "continue", reply_id: article.dataset.messageId }, (choice) => {
      setReplyModel(article, choice.provider, choice.model);
      setReplyStatus(article, "streaming");
      return { article, text };
    });
  }

  regenerate(article) {
    // A new reply beside this one (any reply); the old one stays, one arrow away.
    if (this.busy || !article.dataset.messageId) return;
    this.requestReply({ action: "regenerate", reply_id: article.dataset.messageId }, (choice) => {
      const question = article.previousElementSibling;
      while (article.nextElementSibling && !article.nextElementSibling.classList.contains("is-queued")) {
        article.nextElementSibling.remove();
      }
      article.remove();
      const reply = addReply(this.threadInner, choice.provider, choice.model);
      if (question) question.after(reply);
      else this.placeBeforeQueue(reply);
      this.branchChanged = true;
      return { article: reply };
    });
    // Its button is gone with the old reply: Stop has the focus while the new one is
    // written, then the message box (Composer.setBusy).
    if (this.busy) this.composer.stopButton.focus();
  }

  startEdit(userArticle) {
    if (this.busy || userArticle.querySelector(".edit-form")) return;
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
    textarea.rows = 2; // then as tall as its text, up to a maximum (chat.css, fitToText)
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
    this.refreshLastActions();
    fitToText(textarea);
    textarea.addEventListener("input", () => fitToText(textarea));
    // Shown from its start: the caret at the end when it all fits, else at the start.
    const end = textarea.scrollHeight > textarea.clientHeight + 1 ? 0 : textarea.value.length;
    textarea.setSelectionRange(end, end);
    textarea.focus();
    textarea.scrollTop = 0;

    const close = () => {
      form.remove();
      content.hidden = false;
      userArticle.classList.remove("is-editing");
      this.refreshLastActions();
    };
    const cancelEdit = () => {
      close();
      userArticle.querySelector("[data-action=edit]")?.focus();
    };
    cancel.addEventListener("click", cancelEdit);
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        cancelEdit();
      }
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = textarea.value.trim();
      if (!text || this.busy) return;
      const editedId = userArticle.dataset.messageId;
      this.requestReply({ action: "edit", content: text, message_id: editedId }, (choice) => {
        // The form goes, focus with it: to Stop while the reply is written, as Regenerate.
        const hadFocus = form.contains(document.activeElement);
        close();
        if (hadFocus) this.composer.stopButton.focus();
        content.textContent = text;
        content.dir = textDirection(text);
        // A new version of the message: the old one and its branch stay on the server.
        delete userArticle.dataset.messageId;
        userArticle.querySelector("[data-branches]")?.remove();
        this.branchChanged = true;
        while (userArticle.nextElementSibling && !userArticle.nextElementSibling.classList.contains("is-queued")) {
          userArticle.nextElementSibling.remove();
        }
        const reply = addReply(this.threadInner, choice.provider, choice.model);
        userArticle.after(reply);
        return { article: reply };
      });
    });
  }

  // -- Clicks in the thread ----------------------------------------------------------------

  onThreadClick(event) {
    const earlier = event.target.closest("a[data-load-earlier]");
    if (earlier) {
      event.preventDefault();
      if (earlier.getAttribute("aria-disabled") !== "true") this.loadEarlier(earlier);
      return;
    }
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const article = button.closest("article.msg");
    const action = button.dataset.action;
    if (action === "copy") copyMessage(button);
    else if (action === "copy-code") copyCode(button);
    else if (action === "toggle-length") toggleLength(button);
    else if (action === "retry") this.retry(article);
    else if (action === "continue") this.continueReply(article);
    else if (action === "regenerate") this.regenerate(article);
    else if (action === "edit") this.startEdit(article);
    else if (action === "fork") this.fork(article);
    else if (action === "stop-one") {
      for (const stream of this.streams) if (stream.article === article) stream.stop();
    }
    else if (action === "delete-branch") this.deleteBranch(article);
    else if (action === "branch" && button.dataset.target) {
      // Focus stays on the arrows, now under the version shown (the one that can be used).
      const step = button.getAttribute("aria-label");
      this.branchRequest(
        urlFor(this.urls.showUrl, button.dataset.target),
        `[data-message-id="${button.dataset.target}"] [data-action=branch][aria-label="${CSS.escape(step)}"]:not([disabled]), [data-message-id="${button.dataset.target}"] [data-action=branch]:not([disabled])`,
      );
    } else if (action === "pick") {
      this.branchRequest(urlFor(this.urls.showUrl, button.dataset.target), `[data-message-id="${button.dataset.target}"] [data-action=copy]`);
    }
    else if (action === "cancel-queued") this.cancelQueued(article);
  }

  /**
   * A page brought back from the back-forward cache: ask the server whether its
   * conversation still exists (GET /c/status/?ids=<id>, which lists only the person's
   * own). Gone (deleted here or in another tab): go to a new chat, which says so, taking
   * what was queued for it to the new chat's message box. Still there, or no answer
   * (offline, signed out): nothing changes, the page and its queue stay as they are.
   */
  async leaveIfDeleted() {
    const id = this.conversationId;
    if (!/^\d+$/.test(id) || !this.urls.statusUrl) return;
    let conversations;
    try {
      const response = await fetch(`${this.urls.statusUrl}?ids=${id}`, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      if (!response.ok || response.redirected) return;
      conversations = (await response.json()).conversations;
    } catch {
      return;
    }
    if (!conversations || id in conversations || id !== this.conversationId) return;
    writeStored(GONE_KEY, { title: this.titleEl.textContent.trim() });
    this.conversationId = ""; // leaving (pagehide) keeps the queue for the new chat's box
    window.location.replace(this.urls.indexUrl || "/");
  }

  /** This conversation's id for the queue kept in storage ("new" for a new chat). */
  queueId() {
    return this.conversationId || "new";
  }

  queueKey() {
    return `${QUEUED_KEY}${this.queueId()}`;
  }

  /**
   * The page is going away (reload, another page): keep what is queued, and what was put
   * back in the box from the queue, for this conversation's message box (this tab only).
   */
  keepQueued() {
    if (this.temporary.active) return; // a temporary chat's text is never kept
    const texts = this.queue.items.map((item) => item.text);
    if (this.keepBox && this.composer.text()) texts.unshift(this.composer.text());
    if (!texts.length) return;
    writeStored(this.queueKey(), texts);
    writeStored(LEFT_KEY, { id: this.queueId(), title: this.titleEl.textContent.trim() });
  }

  /** Put the texts queued when the page last went away back in the box (`use` false: drop them). */
  restoreQueued(use = true) {
    const texts = readStored(this.queueKey());
    writeStored(this.queueKey(), null);
    if (!use || !Array.isArray(texts)) return;
    const kept = texts.filter((text) => typeof text === "string" && text);
    for (const text of kept.reverse()) this.composer.restore(text);
    if (kept.length) this.keepBox = true;
  }

  /**
   * Queued texts kept for other conversations (the person left them with messages queued):
   * the conversation just left is named in a notice, and each is marked in the list until
   * opened again.
   */
  showKeptElsewhere() {
    const left = readStored(LEFT_KEY);
    writeStored(LEFT_KEY, null);
    const here = this.queueId();
    const kept = keptQueueIds().filter((id) => id !== here);
    if (left && left.id !== here && kept.includes(String(left.id))) {
      notify(format(i18n.queuedKept, { title: left.title || i18n.newChat }));
    }
    for (const id of kept) this.sidebar.markQueued(id);
  }

  cancelQueued(article) {
    // Not sent after all: the text goes back in the message box, nothing typed is lost.
    const files = this.queue.items.find((item) => item.article === article)?.files ?? [];
    const text = this.queue.cancel(article);
    if (text) this.composer.restore(text);
    this.composer.attachments.restore(files);
    this.composer.focus();
  }

  async loadEarlier(link) {
    // Older messages arrive as server-rendered HTML and go above the first one, keeping
    // the reader's place; the fragment brings its own link to the page above.
    link.setAttribute("aria-disabled", "true");
    try {
      const response = await fetch(link.dataset.fragmentUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const fragment = document.createRange().createContextualFragment(await response.text());
      const first = fragment.querySelector("article.msg, a[data-load-earlier]");
      const height = this.thread.scrollHeight;
      const hadFocus = link === document.activeElement;
      link.replaceWith(fragment);
      if (hadFocus && first) {
        // Keyboard users go on from the earlier messages, not from the top of the page.
        if (!first.matches("a")) first.tabIndex = -1;
        first.focus({ preventScroll: true });
      }
      this.thread.scrollTop += this.thread.scrollHeight - height;
      addCodeCopyButtons(this.threadInner);
      collapseLong(this.threadInner);
      this.refreshLastActions();
    } catch {
      link.removeAttribute("aria-disabled");
      window.location.href = link.href;
    }
  }
}
