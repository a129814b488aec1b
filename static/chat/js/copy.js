// Copy: a reply's Markdown source (not its rendering), a user message's text, one code
// block's code. The button says "Copied" (or "Copy failed") for a moment.

import { i18n } from "./dom.js";
import { replySource } from "./messages.js";

const FLASH_MS = 1500;

/** Put `text` on the clipboard; true when it worked. */
export async function copyText(text) {
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

function flashCopied(button, ok, label) {
  button.textContent = ok ? i18n.copied : i18n.copyFailed;
  clearTimeout(button.copyTimer);
  button.copyTimer = setTimeout(() => {
    button.textContent = label;
  }, FLASH_MS);
}

/** The Copy button of a message was pressed. */
export async function copyMessage(button) {
  const article = button.closest("article.msg");
  const text =
    article.dataset.role === "assistant" ? replySource(article) : article.querySelector("[data-content]").textContent;
  flashCopied(button, await copyText(text.trim()), i18n.copy);
}

/** The Copy code button of a code block was pressed. */
export async function copyCode(button) {
  const code = button.parentElement.querySelector("pre");
  flashCopied(button, await copyText(code ? code.textContent : ""), i18n.copyCode);
}
