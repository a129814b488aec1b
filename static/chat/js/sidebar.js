// The conversation list: opening and closing it on a phone, the current conversation
// first when it gets a message, and each conversation's state kept up to date while the
// page is open: a reply being written, a finished reply not seen yet (a visible mark plus
// visually hidden text for screen readers), and the title the server writes a few
// seconds after a new chat's first reply. A conversation left with a message queued is
// marked "Unsent message" (the chat page keeps it for that conversation's message box).
//
// GET /c/status/?ids=1,2,3 -> {"conversations": {"1": {"running": true, "unseen": false,
// "title": "..."}, ...}} is asked every few seconds while a listed conversation has a
// reply being written, and for a little while after a send.

import { fromTemplate, i18n, urlFor } from "./dom.js";

const POLL_MS = 3000;
const WATCH_AFTER_SEND_MS = 20_000; // a new chat's title arrives a few seconds after its reply
const MAX_IDS = 100;

/**
 * The list's empty-state line when no conversation is left in it (pinned ones aside), the
 * same as the server writes for an empty list: its data-empty-text ("No archived
 * conversations."...), or data-empty-pinned-text ("No other conversations.") while the
 * "Pinned" group holds some. Removed when the list has conversations again.
 * @param {HTMLElement | null} list the #conversation-list
 */
export function showEmptyList(list) {
  if (!list) return;
  let line = list.querySelector(":scope > .conv-empty");
  if (list.querySelector(":scope > li.conv")) {
    line?.remove();
    return;
  }
  const pinned = list.querySelector("#pinned-list li.conv");
  const text = pinned ? list.dataset.emptyPinnedText : list.dataset.emptyText;
  if (!text) return;
  if (!line) {
    line = document.createElement("li");
    line.className = "conv-empty";
    list.append(line);
  }
  line.textContent = text;
}

export class Sidebar {
  /**
   * @param {object} options
   * @param {DOMStringMap} options.urls the #app data attributes (conversationUrl, statusUrl)
   * @param {() => string} options.currentId the open conversation's id ("" for a new chat)
   * @param {(title: string) => void} options.onCurrentTitle the open conversation got a title
   */
  constructor({ urls, currentId, onCurrentTitle }) {
    this.urls = urls;
    this.currentId = currentId;
    this.onCurrentTitle = onCurrentTitle;
    this.app = document.getElementById("app");
    this.nav = document.getElementById("sidebar");
    this.list = document.getElementById("conversation-list");
    this.toggle = document.querySelector("[data-sidebar-toggle]");
    this.backdrop = document.querySelector(".sidebar-backdrop");
    this.timer = 0;
    this.watchUntil = 0;
    this.quiet = new Set(); // conversations whose finished reply this page showed (seen)

    this.toggle.addEventListener("click", () => this.setOpen(!this.app.classList.contains("sidebar-open")));
    for (const closer of document.querySelectorAll("[data-sidebar-close]")) {
      closer.addEventListener("click", () => this.setOpen(false));
    }
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.app.classList.contains("sidebar-open")) this.setOpen(false);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.shouldPoll()) this.schedule(0);
    });
    if (this.list?.querySelector("li.conv.is-running")) this.schedule();
  }

  setOpen(open) {
    this.app.classList.toggle("sidebar-open", open);
    this.toggle.setAttribute("aria-expanded", String(open));
    this.backdrop.hidden = !open;
    if (open) this.nav.querySelector("a, button, input")?.focus();
    else if (this.nav.contains(document.activeElement)) this.toggle.focus();
  }

  item(id) {
    return this.list?.querySelector(`li[data-conversation-id="${CSS.escape(String(id))}"]`) ?? null;
  }

  /** Put conversation `id` first and mark it current (it just got a message). */
  upsert(id, title) {
    if (!this.list) return;
    this.list.querySelector(".conv-empty")?.remove();
    let item = this.item(id);
    if (!item) {
      item = fromTemplate("tpl-conversation");
      item.dataset.conversationId = id;
      const link = item.querySelector(".conv-link");
      link.id = `conv-title-${id}`;
      link.href = urlFor(this.urls.conversationUrl, id);
      const state = item.querySelector("[data-conv-state]");
      if (state) {
        state.id = `conv-state-${id}`;
        link.setAttribute("aria-describedby", state.id);
      }
      for (const button of item.querySelectorAll("button[data-action]")) {
        button.id = `conv-${button.dataset.action}-${id}`;
        button.setAttribute("aria-labelledby", `${button.id} ${link.id}`);
      }
    }
    const link = item.querySelector(".conv-link");
    for (const other of this.list.querySelectorAll("li.is-current")) {
      other.classList.remove("is-current");
      other.querySelector(".conv-link")?.removeAttribute("aria-current");
    }
    item.classList.add("is-current");
    link.setAttribute("aria-current", "page");
    // A pinned one keeps its place in the "Pinned" group (folders.js); others go first after it.
    if (!item.closest("#pinned-list")) {
      const pinned = this.list.querySelector(":scope > #pinned-section");
      if (pinned) pinned.after(item);
      else this.list.prepend(item);
    }
    if (title) this.setTitle(id, title);
    else if (!link.textContent) link.textContent = i18n.newChat;
  }

  /** Remove conversation `id` from the list (it was deleted). */
  remove(id) {
    this.item(id)?.remove();
    showEmptyList(this.list);
  }

  /** Show `title` for conversation `id` (a search result keeps its marked-up match). */
  setTitle(id, title) {
    const link = this.item(id)?.querySelector(".conv-link");
    if (!link || !title || link.dataset.title === title) return;
    link.dataset.title = title;
    if (!link.querySelector("mark, .conv-snippet")) link.textContent = title;
  }

  /** Mark conversation `id`: a reply being written, or a finished one not seen yet. */
  setState(id, { running = false, unseen = false }) {
    const item = this.item(id);
    if (!item) return;
    if (this.quiet.has(String(id)) && !running) unseen = false;
    item.classList.toggle("is-running", running);
    item.classList.toggle("is-unseen", !running && unseen);
    const state = item.querySelector("[data-conv-state]");
    if (!state) return;
    const text = running ? i18n.replyRunning : unseen ? i18n.replyUnseen : "";
    if (state.dataset.stateText === text) return;
    state.dataset.stateText = text;
    if (!text) {
      state.replaceChildren();
      return;
    }
    const mark = document.createElement("span");
    mark.className = "conv-mark";
    mark.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    label.className = "visually-hidden";
    label.textContent = text;
    state.replaceChildren(mark, label);
  }

  /**
   * Mark conversation `id` as holding a message queued and not sent: the person left it
   * with one queued, and it waits in that conversation's message box (shown when opened).
   */
  markQueued(id) {
    const item = this.item(id);
    if (!item || item.querySelector("[data-conv-queued]")) return;
    const link = item.querySelector(".conv-link");
    // A line of its own under the title (chat.css), so the title keeps its room.
    const mark = document.createElement("span");
    mark.className = "conv-queued";
    mark.dataset.convQueued = "";
    mark.id = `conv-queued-${id}`;
    const label = document.createElement("span");
    label.className = "conv-queued-label";
    label.textContent = i18n.queuedUnsent;
    mark.append(label);
    item.append(mark);
    const described = link.getAttribute("aria-describedby");
    link.setAttribute("aria-describedby", described ? `${described} ${mark.id}` : mark.id);
  }

  /** A reply started in conversation `id` on this page. */
  replyStarted(id) {
    this.quiet.delete(String(id));
    this.setState(id, { running: true });
    this.watch();
  }

  /** A reply this page showed in conversation `id` has ended (the person saw it). */
  replyEnded(id) {
    this.quiet.add(String(id));
    this.setState(id, { running: false, unseen: false });
    this.watch();
  }

  /** Keep asking for a while (a title may be on its way). */
  watch() {
    this.watchUntil = Date.now() + WATCH_AFTER_SEND_MS;
    this.schedule();
  }

  shouldPoll() {
    return Boolean(this.list?.querySelector("li.conv.is-running")) || Date.now() < this.watchUntil;
  }

  schedule(delay = POLL_MS) {
    if (!this.urls.statusUrl || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = 0;
      this.poll();
    }, delay);
  }

  async poll() {
    if (document.hidden) return; // resumes when the page is shown again
    const ids = [...(this.list?.querySelectorAll("li[data-conversation-id]") ?? [])]
      .map((item) => item.dataset.conversationId)
      .filter((id) => /^\d+$/.test(id))
      .slice(0, MAX_IDS);
    if (ids.length) {
      try {
        const response = await fetch(`${this.urls.statusUrl}?ids=${ids.join(",")}`, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.ok) this.apply((await response.json()).conversations ?? {});
      } catch {
        // offline for a moment: ask again next time
      }
    }
    if (this.shouldPoll()) this.schedule();
  }

  apply(conversations) {
    for (const [id, state] of Object.entries(conversations)) {
      this.setState(id, { running: Boolean(state.running), unseen: Boolean(state.unseen) });
      if (state.title) {
        this.setTitle(id, state.title);
        if (id === String(this.currentId())) this.onCurrentTitle(state.title);
      }
    }
  }
}
