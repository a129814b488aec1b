// One reply as it is written, with its own state: its <article>, the text and reasoning so
// far, the id of the last event applied, its status. Several can run at once (a page can
// show several replies being written).
//
// The reply belongs to the server, not to this page: closing the tab, reloading or losing
// the connection does not stop it. A stream is read from
//   - the POST that asked for the reply (start()), and when that breaks, from
//   - GET /m/<id>/events/ (attach()): with after=0 a "snapshot" event (the text so far)
//     comes first, with after=N the events after event N. Every event has an id (the
//     run's sequence number); an event whose id was already applied is skipped, so no
//     text is lost or shown twice whatever the reconnections.
// Events (chat/services, the chat SSE encoder): start, snapshot, fallback {provider,
// model, note} (another model answers), delta {text},
// reasoning {text}, done {status, html, reasoning_ms, ...}, error {message, partial_html, ...}.
//
// The model's reasoning goes into a collapsed block above the answer whose summary counts
// the seconds while the model thinks ("Thinking… 5 s"), then says how long it thought
// ("Thought for 12 s") once the answer starts; the ending's reasoning_ms (the server's
// measure) has the last word.

import { postForm, sleep, urlFor } from "./dom.js";
import { LiveText } from "./markdown-live.js";
import {
  appendReasoning,
  applyMessage,
  collapseLong,
  replyContent,
  setReasoning,
  setReasoningSummary,
  setFallback,
  setReplyActions,
  setReplyError,
  setReplyHtml,
  setReplyModel,
  setReplyNotice,
  setReplyPlainText,
  setReplySource,
  setReplyStatus,
  setReplyTokens,
  setTextDirection,
  setTrimmed,
} from "./messages.js";
import { readEvents } from "./sse.js";

const RECONNECT_DELAYS = [250, 500, 1000, 2000, 3000, 5000]; // ms, then every 5 s
const GIVE_UP_AFTER = 120_000; // ms without reaching the server: the reply is lost to us
const STOP_GRACE = 3000; // ms for the server's "stopped" to arrive after Stop
const POLL_EVERY = 1000; // ms, when the server has no events endpoint
const THINKING_TICK = 1000; // ms between updates of "Thinking… N s"

export class ReplyStream {
  /**
   * @param {object} options
   * @param {{eventsUrl: string, messageUrl: string, stopUrl: string}} options.urls URL
   *   patterns with 0 for the reply id ("" for eventsUrl: follow by polling /m/<id>/)
   * @param {HTMLElement|null} options.article the reply's <article> (start() may give it later)
   * @param {object} options.hooks callbacks, each optional:
   *   start(stream, data) the server accepted and started the reply ("start" event);
   *   update(render) wrap a change of the thread (render() makes it), e.g. to keep scrolled;
   *   finish(stream) the reply is no longer being written (stream.status says how it ended).
   * @param {string} options.lostText the sentence shown when the reply cannot be followed
   */
  constructor({ urls, article = null, hooks = {}, lostText = "" }) {
    this.urls = urls;
    this.hooks = hooks;
    this.lostText = lostText;
    this.article = null;
    this.messageId = null;
    this.text = "";
    this.reasoning = "";
    this.lastEventId = 0;
    this.status = "streaming";
    this.finished = false;
    this.stopRequested = false;
    this.stopExpired = false; // Stop was asked and the server did not confirm in time
    this.controller = null;
    this.stopTimer = 0;
    this.live = null;
    // Thinking: since when (Date.now() ms; null when not thinking), whether that start is
    // known (a page that joins mid-thought through another worker does not know it), the
    // time thought once the answer began (ms), and the timer of the live count.
    this.thought = false; // reasoning came
    this.thinkingSince = null;
    this.thinkingKnown = false;
    this.reasoningMs = null;
    this.thinkingTimer = 0;
    if (article) this.setArticle(article);
  }

  setArticle(article) {
    this.article = article;
    this.live = new LiveText(replyContent(article), (render) => this.update(render));
    if (article.dataset.messageId) this.messageId = Number(article.dataset.messageId);
  }

  update(render) {
    if (this.hooks.update) this.hooks.update(render);
    else render();
  }

  /**
   * POST the request for a reply and follow it to its end.
   * @param {string} url the reply URL (chat:reply or chat:reply_new)
   * @param {Record<string, string>} fields the form fields
   * @param {(response: Response) => {article: HTMLElement, text?: string}} accepted called
   *   once the server accepted (2xx): returns the article to write into and the text it
   *   already holds (Continue appends to it)
   * @returns {Promise<{refused?: Response, failed?: boolean}>} refused: the server's
   *   refusal (nothing was saved); failed: the request never reached the server. Resolves
   *   {} once the reply is no longer being written.
   */
  async start(url, fields, accepted) {
    this.controller = new AbortController();
    let response;
    try {
      response = await postForm(url, fields, this.controller.signal);
    } catch {
      return { failed: true };
    }
    if (!response.ok) return { refused: response };
    const { article, text = "" } = accepted(response);
    this.setArticle(article);
    this.messageId = null; // known from the "start" event
    this.text = text;
    try {
      for await (const { event, data, id } of readEvents(response)) {
        await this.handle(event, data, id);
        if (this.finished) break;
      }
    } catch {
      // The connection broke: the reply goes on on the server; attach below.
    }
    this.controller = null;
    if (!this.finished) await this.follow();
    return {};
  }

  /**
   * Follow a reply already being written (rendered by the page as streaming, or started
   * by a request that broke): its text so far, then live to its end. Resolves once the
   * reply is no longer being written.
   * @param {number} after the last event id already applied (0: take a snapshot)
   */
  async attach(after = 0) {
    this.lastEventId = after;
    await this.follow();
  }

  /** Ask the server to stop the reply (it stops for every tab following it). */
  stop() {
    if (this.finished || this.stopRequested) return;
    this.stopRequested = true;
    if (this.messageId === null) return; // sent once the "start" event names the reply
    this.sendStop();
  }

  sendStop() {
    postForm(urlFor(this.urls.stopUrl, this.messageId)).catch(() => {});
    // Every follower then gets "done" (status stopped) within a second or so; if it does
    // not come, stop listening and show what the server saved.
    clearTimeout(this.stopTimer);
    this.stopTimer = setTimeout(() => {
      this.stopExpired = true;
      this.controller?.abort();
    }, STOP_GRACE);
  }

  // -- Following -----------------------------------------------------------------------

  async follow() {
    if (this.messageId === null) {
      // Broke before the server said which reply it was writing: nothing to follow.
      this.fail(this.stopRequested ? "" : this.lostText, this.stopRequested ? "stopped" : "error");
      return;
    }
    if (!this.urls.eventsUrl) {
      await this.poll();
      return;
    }
    let reached = Date.now(); // when the server last sent something
    let attempt = 0;
    while (!this.finished && !this.stopExpired) {
      this.controller = new AbortController();
      let progressed = false;
      try {
        // No id yet: no "after" at all (the server then starts with a snapshot).
        const after = this.lastEventId;
        const url = urlFor(this.urls.eventsUrl, this.messageId) + (after ? `?after=${after}` : "");
        const headers = after ? { Accept: "text/event-stream", "Last-Event-ID": String(after) } : { Accept: "text/event-stream" };
        const response = await fetch(url, { credentials: "same-origin", headers, signal: this.controller.signal });
        if (response.status === 404) break; // not ours, or gone with its conversation
        if (response.ok) {
          for await (const { event, data, id } of readEvents(response)) {
            progressed = true;
            await this.handle(event, data, id);
            if (this.finished) break;
          }
        }
      } catch {
        // The connection broke (or Stop gave up waiting): reconnect, or settle below.
      } finally {
        this.controller = null;
      }
      if (this.finished) return;
      if (this.stopExpired) break;
      if (progressed) {
        attempt = 0;
        reached = Date.now();
      } else if (Date.now() - reached > GIVE_UP_AFTER) {
        break;
      }
      await sleep(RECONNECT_DELAYS[Math.min(attempt, RECONNECT_DELAYS.length - 1)]);
      attempt++;
    }
    if (!this.finished) await this.settle();
  }

  async poll() {
    // A server without the events endpoint: poll the saved reply until it is no longer
    // being written (two minutes without new text: the writer is gone).
    let idle = 0;
    let last = null;
    while (!this.finished && idle < GIVE_UP_AFTER / POLL_EVERY) {
      await sleep(POLL_EVERY);
      const message = await this.fetchMessage();
      if (!message) {
        idle++;
        continue;
      }
      if (message.status !== "streaming") {
        this.finishWith(message);
        return;
      }
      idle = message.content === last ? idle + 1 : 0;
      last = message.content;
      this.text = message.content || "";
      this.reasoning = message.reasoning || "";
      setReasoning(this.article, this.reasoning, { thinking: Boolean(this.reasoning) && !this.text });
      this.live.set(this.text);
    }
    if (!this.finished) this.fail(this.lostText);
  }

  async settle() {
    // The stream could not be followed to its end: show what the server saved.
    for (let attempt = 0; attempt < 5; attempt++) {
      const message = await this.fetchMessage();
      if (message && message.status !== "streaming") {
        this.finishWith(message);
        return;
      }
      await sleep(400);
    }
    this.fail(this.stopRequested ? "" : this.lostText, this.stopRequested ? "stopped" : "error");
  }

  async fetchMessage() {
    try {
      const response = await fetch(urlFor(this.urls.messageUrl, this.messageId), { credentials: "same-origin" });
      return response.ok ? await response.json() : null;
    } catch {
      return null;
    }
  }

  // -- Events --------------------------------------------------------------------------

  /** Apply one event of the reply (see the list at the top). */
  async handle(event, data, id) {
    if (id !== null && id !== undefined) {
      if ((event === "delta" || event === "reasoning") && id <= this.lastEventId) return; // seen
      this.lastEventId = Math.max(this.lastEventId, id);
    }
    const article = this.article;
    if (event === "start") {
      this.messageId = data.message_id;
      article.dataset.messageId = data.message_id;
      setReplyModel(article, data.provider, data.model);
      setTrimmed(article, data.trimmed_note);
      this.hooks.start?.(this, data);
      if (this.stopRequested) this.sendStop();
    } else if (event === "snapshot") {
      this.text = data.text || "";
      this.reasoning = data.reasoning || "";
      setReplyModel(article, data.provider, data.model);
      setFallback(article, data.fallback_note);
      const ms = data.reasoning_ms ?? null;
      this.stopThinking();
      this.thought = Boolean(this.reasoning);
      if (data.thinking) this.startThinking(ms);
      else this.reasoningMs = ms;
      setReasoning(article, this.reasoning, this.reasoningSummary());
      setTextDirection(article, this.text);
      this.live.set(this.text);
    } else if (event === "fallback") {
      // The chosen model failed before answering: another one answers instead.
      setReplyModel(article, data.provider, data.model);
      setFallback(article, data.note);
      this.hooks.fallback?.(this, data);
    } else if (event === "delta") {
      if (this.thinkingSince !== null) this.answerStarted();
      this.text += data.text;
      if (this.text.length < 400) setTextDirection(article, this.text);
      this.live.set(this.text);
    } else if (event === "reasoning") {
      this.reasoning += data.text;
      const first = !this.thought;
      if (first) this.startThinking(0);
      this.update(() => {
        appendReasoning(article, data.text);
        if (first) setReasoningSummary(article, this.reasoningSummary());
      });
    } else if ((event === "done" || event === "error") && !(id > 0) && (await this.finishFromSaved())) {
      // An ending read from the database (the run was over when we asked): its text may
      // hold pieces this page never received; the saved reply has them all.
    } else if (event === "done") {
      this.live.cancel();
      this.endThinking(data.reasoning_ms);
      this.update(() => {
        setReplySource(article, this.text);
        if (data.html) setReplyHtml(article, data.html);
        else setReplyPlainText(article, this.text);
        setReplyModel(article, data.provider, data.model);
        setReplyStatus(article, data.status);
        article.dataset.finishReason = data.finish_reason || "";
        setReplyNotice(article, data.notice);
        setReplyError(article, "");
        setReplyActions(article, { canContinue: data.can_continue, canRetry: data.status === "incomplete" });
        setReplyTokens(article, data.input_tokens, data.output_tokens, data.reasoning_tokens);
        if (this.reasoning) setReasoningSummary(article, this.reasoningSummary());
        collapseLong(article.parentElement);
      });
      this.end(data.status);
    } else if (event === "error") {
      this.live.cancel();
      this.endThinking(data.reasoning_ms);
      this.update(() => {
        setReplySource(article, this.text);
        if (data.partial_html) setReplyHtml(article, data.partial_html);
        else setReplyPlainText(article, this.text);
        const status = data.status || "error";
        setReplyStatus(article, status);
        setReplyError(article, data.message, data.detail);
        if (data.fallback_note) setFallback(article, data.fallback_note); // the last one failed too
        setReplyActions(article, { canRetry: true, canContinue: Boolean(data.can_continue) });
        if (this.reasoning) setReasoningSummary(article, this.reasoningSummary());
      });
      this.end(data.status || "error");
    }
  }

  async finishFromSaved() {
    const message = await this.fetchMessage();
    if (!message || message.status === "streaming") return false;
    this.finishWith(message);
    return true;
  }

  finishWith(message) {
    this.live?.cancel();
    this.endThinking(message.reasoning_ms);
    this.text = message.content || "";
    this.update(() => {
      applyMessage(this.article, message);
      if (message.reasoning) setReasoningSummary(this.article, this.reasoningSummary());
      collapseLong(this.article.parentElement);
    });
    this.end(message.status);
  }

  fail(message, status = "error") {
    if (!this.article) {
      this.end(status);
      return;
    }
    this.live.flush(); // the text received so far stays on screen
    this.endThinking(null);
    this.update(() => {
      if (this.text) setReplySource(this.article, this.text);
      replyContent(this.article).classList.remove("stream-text", "is-plain", "is-markdown");
      setReplyStatus(this.article, status);
      setReplyError(this.article, message);
      if (status === "error") setReplyActions(this.article, { canRetry: true });
      if (this.reasoning) setReasoningSummary(this.article, this.reasoningSummary());
    });
    this.end(status);
  }

  // -- Thinking time ---------------------------------------------------------------------

  /** The model is thinking, for `ms` already (null: for a time not known). */
  startThinking(ms) {
    this.thought = true;
    this.thinkingKnown = ms !== null;
    this.thinkingSince = Date.now() - (ms ?? 0);
    clearInterval(this.thinkingTimer);
    this.thinkingTimer = setInterval(() => {
      if (this.article && this.thinkingKnown) setReasoningSummary(this.article, this.reasoningSummary());
    }, THINKING_TICK);
  }

  stopThinking() {
    clearInterval(this.thinkingTimer);
    this.thinkingTimer = 0;
    this.thinkingSince = null;
  }

  /** The answer began: the thinking time is known ("Thought for N s"). */
  answerStarted() {
    const known = this.thinkingKnown;
    const ms = Date.now() - this.thinkingSince;
    this.stopThinking();
    this.reasoningMs = known ? ms : null;
    if (this.article && this.reasoning) setReasoningSummary(this.article, this.reasoningSummary());
  }

  /** The reply ended: the server's measure (`ms`) wins over ours. */
  endThinking(ms) {
    if (this.thinkingSince !== null) this.answerStarted();
    if (ms !== null && ms !== undefined) this.reasoningMs = ms;
  }

  /** What the reasoning summary shows now (see messages.setReasoningSummary). */
  reasoningSummary() {
    if (this.thinkingSince !== null) {
      return { thinking: true, ms: this.thinkingKnown ? Date.now() - this.thinkingSince : null };
    }
    return { thinking: false, ms: this.reasoningMs };
  }

  end(status) {
    if (this.finished) return;
    this.finished = true;
    this.status = status;
    clearTimeout(this.stopTimer);
    this.stopThinking();
    this.hooks.finish?.(this);
  }
}
