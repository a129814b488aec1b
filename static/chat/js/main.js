// The page's script, on every page (base.html): flash messages everywhere, and the chat
// page where there is one. Small ES modules, no build step: see chat-page.js for the
// chat page, reply-stream.js for one reply being written, markdown-live.js for the
// Markdown rendered as it arrives.

// Every module of the page named here, so that the browser fetches them all at once
// instead of discovering them one import level at a time (the page is ready sooner).
import "./dom.js";
import "./sse.js";
import "./notices.js";
import "./messages.js";
import "./markdown-live.js";
import "./reply-stream.js";
import "./composer.js";
import "./copy.js";
import "./sidebar.js";
import "./dialogs.js";
import "./search-hit.js";
import "./attachments.js";
import "./compare.js";
import "./sharing.js";
import "./temporary.js";
import "./folders.js";
import "./shortcuts.js"; // binds its keys on the chat page
import "./pwa.js"; // the service worker, the offline banner and page
import { ChatPage } from "./chat-page.js";
import { initFlash } from "./notices.js";

initFlash();

const app = document.getElementById("app");
if (app) new ChatPage(app).start();

// The language switcher comes back to the page as it is now: the chat page changes its
// address without a reload (a new chat gets its id), which the form's "next" was not told.
for (const form of document.querySelectorAll("form.language-form")) {
  form.addEventListener("submit", () => {
    const next = form.querySelector('input[name="next"]');
    if (next) next.value = window.location.pathname + window.location.search;
  });
}
