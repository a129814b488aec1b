// Temporary chats (issue 13): a chat the server never writes down. The "Temporary chat"
// button in the top bar (aria-pressed) turns it on for a new chat (on a saved one it opens
// a new temporary chat: /?temporary=1, which the server renders already on), with a
// banner saying it is not saved.
//
// The chat lives in this page's memory only (never in localStorage or sessionStorage):
// each question goes to POST /t/reply/ as JSON with the whole chat so far,
//   {provider, model, messages: [{role: "user"|"assistant", content}], system_prompt, ...}
// (the settings chosen in the dialog), and the answer is the chat page's own stream of
// events (start, delta, reasoning, done or error), rendered as any reply. A reply is
// added to the chat when it would be sent back to a model as context (complete, stopped,
// or cut off with its text); a failed one is not, and the person can just ask again.
// Stop asks POST /t/<run>/stop/ (the run's number comes in the "start" event); if that
// worker does not know the run, the page closes the stream, which stops it too.
//
// Not offered in a temporary chat: files (the attach button is hidden and nothing is
// uploaded), Compare, Edit, Regenerate, Retry, Continue, Fork. Reloading or closing the
// page loses the chat, as the banner says.

import { csrfToken, i18n } from "./dom.js";
import { setReplyActions, setReplyError, setReplyNotice } from "./messages.js";
import { ReplyStream } from "./reply-stream.js";
import { readEvents } from "./sse.js";

// Incomplete replies that still go back to the model (chat/services/replies.py says why).
const CONTEXT_INCOMPLETE = new Set(["length", "cut_off", "interrupted", "time_limit"]);
// The server takes at most 200 turns (TEMPORARY_MAX_MESSAGES, chat/services/replies.py):
// a longer chat sends its newest ones, the oldest exchanges left out as a context would.
const MAX_SENT_MESSAGES = 199;

/** One reply of a temporary chat: asked with JSON, followed only on its own request. */
class TemporaryStream extends ReplyStream {
  /**
   * POST `body` as JSON to `url` and follow the reply to its end (see ReplyStream.start).
   * @returns {Promise<{refused?: Response, failed?: boolean}>}
   */
  async start(url, body, accepted) {
    this.controller = new AbortController();
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "text/event-stream",
          "X-CSRFToken": csrfToken(),
          "X-Requested-With": "fetch",
        },
        body: JSON.stringify(body),
        credentials: "same-origin",
        signal: this.controller.signal,
      });
    } catch {
      return { failed: true };
    }
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.startsWith("text/event-stream")) return { refused: response };
    const { article } = accepted(response);
    this.setArticle(article);
    this.messageId = null; // the run's number, from the "start" event
    this.text = "";
    try {
      for await (const { event, data, id } of readEvents(response)) {
        await this.handle(event, data, id);
        if (this.finished) break;
      }
    } catch {
      // The connection broke, or Stop stopped waiting: settled below.
    }
    this.controller = null;
    if (!this.finished) await this.follow();
    return {};
  }

  /** The reply lived only in its request: with that gone, nothing is left to follow. */
  async follow() {
    this.fail(this.stopRequested ? "" : this.lostText, this.stopRequested ? "stopped" : "error");
  }
}

export class TemporaryChat {
  /** @param {ChatPage} page the chat page (chat-page.js) this mode belongs to */
  constructor(page) {
    this.page = page;
    this.button = document.getElementById("temporary-button");
    this.banner = document.getElementById("temporary-banner");
    this.active = false;
    this.history = []; // [{role, content}], oldest first: what the model is sent, in memory only
    if (!this.button || !this.banner) return;
    this.strings = this.button.dataset;
    this.button.addEventListener("click", () => this.toggle());
    // Nothing is uploaded while the chat is temporary (a file dropped or pasted included).
    const tray = page.composer.attachments;
    const add = tray.add.bind(tray);
    tray.add = (files) => {
      if (!this.active) add(files);
      else if (files?.length) page.composer.showError(this.strings.noFiles);
    };
    if (this.button.getAttribute("aria-pressed") === "true") this.setActive(true);
  }

  /** Whether the chat has begun (messages shown): leaving it then loses them. */
  get begun() {
    return Boolean(this.page.threadInner.querySelector("article.msg"));
  }

  toggle() {
    const page = this.page;
    if (page.busy) return;
    if (page.conversationId) {
      window.location.href = this.strings.url; // a saved conversation: a new temporary chat
      return;
    }
    if (!this.active) {
      this.setActive(true);
      history.replaceState(null, "", this.strings.url);
      return;
    }
    if (this.begun) {
      if (window.confirm(this.strings.leaveConfirm)) window.location.href = page.urls.indexUrl;
      return;
    }
    this.setActive(false);
    history.replaceState(null, "", page.urls.indexUrl);
  }

  setActive(on) {
    const page = this.page;
    this.active = on;
    this.button.setAttribute("aria-pressed", String(on));
    this.banner.hidden = !on;
    page.app.dataset.temporary = on ? "true" : "";
    for (const id of ["attach-button", "compare-button"]) {
      const element = document.getElementById(id);
      if (element) element.hidden = on;
    }
    if (on && page.compare.picked.length) {
      page.compare.picked = [];
      page.compare.refresh();
    }
    page.setTitle(on ? this.strings.title : i18n.newChat);
  }

  /** Whether `files` (ready in the message box) can go: none can in a temporary chat. */
  accepts(files) {
    if (!files.length) return true;
    this.page.composer.showError(this.strings.noFiles);
    return false;
  }

  /**
   * Ask for the reply to `text` with the chat so far, as ChatPage.requestReply does:
   * `before(choice)` runs once the server accepted and returns {article}. Resolves true
   * when the request was accepted, false when refused (the reason shown) or unsent.
   */
  async ask(text, before) {
    const page = this.page;
    const choice = page.composer.selectedModel();
    if (!choice) {
      page.composer.showError(i18n.noModel);
      return false;
    }
    page.composer.showError("");
    const stream = new TemporaryStream({
      urls: { eventsUrl: "", messageUrl: "", stopUrl: this.strings.stopUrl },
      lostText: i18n.streamLost,
      hooks: {
        // Nothing of it is on the server to act on later (edit, fork, delete...).
        start: (current) => delete current.article.dataset.messageId,
        update: (render) => page.keepScrolled(render),
        finish: (current) => this.finished(current, text),
      },
    });
    page.pending.add(stream);
    page.refreshBusy();
    const messages = [...this.history, { role: "user", content: text }];
    while (messages.length > MAX_SENT_MESSAGES) messages.splice(0, 2);
    const body = { ...(page.pendingSettings ?? {}), ...choice, messages };
    let result;
    try {
      result = await stream.start(this.strings.replyUrl, body, () => {
        page.pending.delete(stream);
        page.streams.add(stream);
        const { article } = before(choice);
        setReplyNotice(article, "");
        setReplyError(article, "");
        setReplyActions(article);
        page.refreshBusy();
        page.scrollToBottom(true);
        return { article };
      });
    } finally {
      if (page.pending.delete(stream)) page.refreshBusy();
    }
    if (result.refused) {
      await page.showRefusal(result.refused);
      return false;
    }
    if (result.failed) {
      page.composer.showError(i18n.networkError);
      return false;
    }
    return true;
  }

  /** A reply ended: the exchange joins the chat if it goes back to the model as context. */
  finished(stream, question) {
    const article = stream.article;
    const reason = article?.dataset.finishReason || "";
    const usable =
      stream.text.trim() &&
      (stream.status === "complete" ||
        stream.status === "stopped" ||
        (stream.status === "incomplete" && CONTEXT_INCOMPLETE.has(reason)));
    if (usable) this.history.push({ role: "user", content: question }, { role: "assistant", content: stream.text });
    if (article) setReplyActions(article); // no Retry or Continue here: ask again instead
    this.page.onFinish(stream);
  }
}
