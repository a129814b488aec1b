// Short notices that go away by themselves: "Saved", "Queued message sent", the server's
// flash messages (except errors and warnings, which stay until dismissed), transient errors in dialogs.
// Errors inside a reply are not notices: they stay with the reply.

const NOTICE_MS = 5000; // how long a notice stays
const FLASH_MS = 8000; // a server message (e.g. "Conversation deleted.") stays a bit longer

let region = null;

function noticeRegion() {
  // A polite live region (no role: the page's role=status is the flash list's). On the
  // chat page it sits just above the message box (chat.css), so it never covers it.
  if (!region) {
    region = document.createElement("div");
    region.className = "notices";
    region.setAttribute("aria-live", "polite");
    const composer = document.getElementById("composer");
    region.classList.toggle("is-above-composer", Boolean(composer));
    (composer ?? document.body).append(region);
  }
  return region;
}

/** Show `text` for a few seconds (read out by screen readers). */
export function notify(text) {
  if (!text) return;
  const notice = document.createElement("p");
  notice.className = "notice";
  notice.textContent = text;
  noticeRegion().append(notice);
  setTimeout(() => notice.remove(), NOTICE_MS);
}

/**
 * Show `message` in `element` (hidden when empty) and hide it again after a few seconds,
 * unless another message replaced it meanwhile.
 */
export function showTransient(element, message, ms = NOTICE_MS + 3000) {
  element.textContent = message || "";
  element.hidden = !message;
  clearTimeout(element.noticeTimer);
  if (message) {
    element.noticeTimer = setTimeout(() => {
      if (element.textContent === message) element.hidden = true;
    }, ms);
  }
}

/** Every page: the × on flash messages, and flash messages other than errors and warnings go away. */
export function initFlash() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-dismiss]");
    if (button) button.closest("li")?.remove();
  });
  for (const flash of document.querySelectorAll(".flash-list > li.flash:not(.flash-error, .flash-warning)")) {
    setTimeout(() => {
      const list = flash.parentElement;
      flash.remove();
      if (list && !list.children.length) list.remove();
    }, FLASH_MS);
  }
}
