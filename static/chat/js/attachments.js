// Files attached to the next message: the attach button, drag-and-drop onto the message
// box, and paste. Each file is uploaded at once (POST /attachments/, multipart "file")
// and shown as a chip in the message box: a thumbnail for an image, an icon, name and size
// otherwise, with a progress bar while it uploads and a button that removes it (and the
// upload, DELETE /attachments/<id>/). The server checks every file; a refusal is shown in
// the composer's error line and the chip goes. The files ready go with the message as
// repeated "attachments" fields (their ids); the thread shows them with renderAttachments,
// the same markup as templates/chat/_attachments.html.

import { csrfToken, format, urlFor } from "./dom.js";

const PREVIEW_MAX_BYTES = 4 * 1024 * 1024; // a local preview (a data: URL) up to this size

/** "1.2 MB" with the translated units ("B,KB,MB,GB"), 1024-based like Django's filesizeformat. */
export function formatSize(bytes, units = "B,KB,MB,GB") {
  const names = String(units).split(",");
  let value = Number(bytes) || 0;
  let unit = 0;
  while (value >= 1024 && unit < names.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = unit === 0 ? String(value) : value.toFixed(1);
  return `${shown} ${names[unit]}`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The strings and settings of the chips list (data-* of #attach-chips in chat.html). */
function trayConfig() {
  return document.getElementById("attach-chips")?.dataset ?? {};
}

/**
 * Fill `container` (a [data-attachments] element of a user message) with `files`, each
 * {id, name, kind, size, url, thumb_url?, width?, height?, page_count?}: thumbnails (the
 * small version the server makes, thumb_url) linking to the full image, file chips for
 * PDFs and text files. Hidden when there are none.
 */
export function renderAttachments(container, files) {
  if (!container) return;
  const strings = trayConfig();
  container.replaceChildren();
  for (const file of files || []) {
    const link = element("a");
    link.href = file.url;
    link.target = "_blank";
    link.rel = "noopener";
    if (file.kind === "image") {
      link.className = "att-thumb";
      link.title = file.name;
      const img = element("img");
      img.src = file.thumb_url || `${file.url}?size=thumb`;
      img.alt = file.name;
      if (file.width && file.height) {
        img.width = file.width;
        img.height = file.height;
      }
      img.loading = "lazy";
      img.decoding = "async";
      link.append(img);
    } else {
      link.className = "att-file";
      const icon = element("span", "att-icon", file.kind === "pdf" ? "PDF" : "TXT");
      icon.setAttribute("aria-hidden", "true");
      const text = element("span", "att-file-text");
      const label = file.kind === "pdf" ? strings.pdf || "PDF" : strings.textFile || "Text file";
      text.append(
        element("span", "att-name", file.name),
        element("span", "att-meta", `${label} · ${formatSize(file.size, strings.sizeUnits)}`),
      );
      link.append(icon, text);
    }
    container.append(" ", link);
  }
  container.hidden = !container.children.length;
}

/**
 * The chips of the message box. One item per file: {key, file, state ("uploading" or
 * "ready"), data (the server's JSON once uploaded), chip, request}.
 */
export class AttachmentTray {
  /**
   * @param {object} options
   * @param {HTMLFormElement} options.form the composer (drop target)
   * @param {HTMLTextAreaElement} options.input the message box (paste target)
   * @param {(message: string) => void} options.showError the composer's error line
   */
  constructor({ form, input, showError }) {
    this.list = document.getElementById("attach-chips");
    this.button = document.getElementById("attach-button");
    this.picker = document.getElementById("attach-input");
    this.form = form;
    this.input = input;
    this.showError = showError;
    this.items = [];
    this.nextKey = 1;
    this.enabled = Boolean(this.list && this.button && this.picker);
    if (!this.enabled) return;
    const config = this.list.dataset;
    this.strings = config;
    this.uploadUrl = config.uploadUrl;
    this.fileUrl = config.fileUrl;
    this.maxFiles = Number(config.maxFiles) || 10;
    this.maxBytes = Number(config.maxBytes) || 20 * 1024 * 1024;

    this.button.addEventListener("click", () => this.picker.click());
    this.picker.addEventListener("change", () => {
      this.add([...this.picker.files]);
      this.picker.value = ""; // the same file can be picked again
    });
    this.input.addEventListener("paste", (event) => this.onPaste(event));
    let depth = 0; // dragenter/dragleave fire for every child crossed
    const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    form.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      form.classList.add("is-dragover");
    });
    form.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    form.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) form.classList.remove("is-dragover");
    });
    form.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      form.classList.remove("is-dragover");
      this.add([...event.dataTransfer.files]);
      this.input.focus();
    });
    // A file dropped anywhere else on the chat (the thread, say) is attached too, rather
    // than opened by the browser in place of the chat.
    const main = document.getElementById("main") || document.body;
    main.addEventListener("dragover", (event) => {
      if (!hasFiles(event) || form.contains(event.target)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    main.addEventListener("drop", (event) => {
      if (!hasFiles(event) || form.contains(event.target)) return;
      event.preventDefault();
      this.add([...event.dataTransfer.files]);
      this.input.focus();
    });
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-remove-attachment]");
      if (!button) return;
      const item = this.items.find((candidate) => String(candidate.key) === button.dataset.removeAttachment);
      if (item) this.remove(item);
      this.input.focus();
    });
  }

  /** How many files are attached (uploading or ready). */
  get size() {
    return this.items.length;
  }

  /** Whether a file is still uploading. */
  get uploading() {
    return this.items.some((item) => item.state === "uploading");
  }

  /** The files uploaded, in the order attached: the server's JSON for each ({id, name, ...}). */
  ready() {
    return this.items.filter((item) => item.state === "ready").map((item) => item.data);
  }

  /** The ids to send with the message, in order. */
  ids() {
    return this.ready().map((data) => data.id);
  }

  /** Why the message cannot be sent yet ("" when it can): files still uploading. */
  pendingReason() {
    return this.uploading ? this.strings?.waitUploads || "…" : "";
  }

  /**
   * Take the chips of `files` (from ready()) out of the box: they were sent with a
   * message and belong to it now (nothing is deleted on the server).
   */
  release(files) {
    const ids = new Set((files || []).map((data) => data.id));
    for (const item of [...this.items]) {
      if (item.state === "ready" && ids.has(item.data.id)) this.drop(item);
    }
  }

  /**
   * Put back chips of files uploaded before (from ready()): a queued message cancelled,
   * or a send that did not go through after the chips were taken.
   */
  restore(files) {
    if (!this.enabled) return;
    for (const data of files || []) {
      if (this.items.some((item) => item.data?.id === data.id)) continue;
      const file = { name: data.name, size: data.size, type: data.content_type || "" };
      const item = { key: this.nextKey++, file, state: "uploading", data: null, request: null };
      item.chip = this.chip(item);
      this.items.push(item);
      this.list.append(item.chip);
      this.uploaded(item, data);
    }
    this.list.hidden = !this.items.length;
  }

  onPaste(event) {
    const data = event.clipboardData;
    const files = [...(data?.files || [])];
    if (!files.length) return;
    // Cells copied from a spreadsheet come as text and as a picture of them: the text is
    // what the person means. A file copied in a file manager may come with its name as text.
    const text = (data.getData("text/plain") || "").trim();
    const namesOnly = text && files.some((file) => text.includes(file.name));
    if (text && !namesOnly) return;
    event.preventDefault();
    this.add(files);
  }

  /** Attach `files` (File objects): each uploads at once, its chip showing progress. */
  add(files) {
    if (!this.enabled || !files.length) return;
    this.showError("");
    for (const file of files) {
      if (this.items.length >= this.maxFiles) {
        this.showError(format(this.strings.tooMany, { limit: this.maxFiles }));
        break;
      }
      if (file.size > this.maxBytes) {
        this.showError(
          format(this.strings.tooBig, { name: file.name, limit: formatSize(this.maxBytes, this.strings.sizeUnits) }),
        );
        continue;
      }
      const item = { key: this.nextKey++, file, state: "uploading", data: null, request: null };
      item.chip = this.chip(item);
      this.items.push(item);
      this.list.append(item.chip);
      this.upload(item);
    }
    this.list.hidden = !this.items.length;
  }

  chip(item) {
    const { file } = item;
    const chip = element("li", "attach-chip");
    chip.dataset.state = "uploading";
    chip.dataset.key = item.key;
    const isImage = file.type.startsWith("image/");
    const visual = element("span", isImage ? "attach-thumb" : "att-icon");
    visual.setAttribute("aria-hidden", "true");
    if (isImage) {
      if (file instanceof Blob && file.size <= PREVIEW_MAX_BYTES) {
        // A data: URL (the page's policy allows those for images, not blob: URLs).
        const reader = new FileReader();
        reader.addEventListener("load", () => {
          if (item.state === "uploading" && typeof reader.result === "string") this.setThumb(item, reader.result);
        });
        reader.readAsDataURL(file);
      }
    } else {
      visual.textContent = file.name.toLowerCase().endsWith(".pdf") ? "PDF" : "TXT";
    }
    const text = element("span", "attach-text");
    const name = element("span", "attach-name", file.name);
    name.title = file.name;
    const meta = element("span", "attach-meta", `${formatSize(file.size, this.strings.sizeUnits)} · ${this.strings.uploading}`);
    const progress = element("progress", "attach-progress");
    progress.max = 100;
    progress.setAttribute("aria-label", `${file.name}: ${this.strings.uploading}`);
    text.append(name, meta, progress);
    const remove = element("button", "attach-remove", "×");
    remove.type = "button";
    remove.dataset.removeAttachment = String(item.key);
    remove.setAttribute("aria-label", format(this.strings.remove, { name: file.name }));
    remove.title = remove.getAttribute("aria-label");
    chip.append(visual, text, remove);
    return chip;
  }

  setThumb(item, url) {
    const visual = item.chip.querySelector(".attach-thumb");
    if (!visual) return;
    const img = visual.querySelector("img") || element("img");
    img.alt = "";
    img.src = url;
    if (!img.parentElement) visual.append(img);
  }

  upload(item) {
    const body = new FormData();
    body.append("file", item.file, item.file.name);
    const request = new XMLHttpRequest();
    item.request = request;
    request.open("POST", this.uploadUrl);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("X-Requested-With", "fetch");
    request.responseType = "json";
    const progress = item.chip.querySelector("progress");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
    });
    request.addEventListener("load", () => {
      item.request = null;
      if (!this.items.includes(item)) return; // removed meanwhile (its DELETE follows)
      const data = request.response;
      if (request.status === 201 && data && data.id) {
        this.uploaded(item, data);
        return;
      }
      const message = data && typeof data.error === "string" && data.error ? data.error : `${request.status} ${request.statusText}`;
      this.drop(item);
      this.showError(message);
    });
    const failed = () => {
      item.request = null;
      if (!this.items.includes(item)) return;
      this.drop(item);
      this.showError(format(this.strings.uploadFailed, { name: item.file.name }));
    };
    request.addEventListener("error", failed);
    request.addEventListener("timeout", failed);
    request.send(body);
  }

  uploaded(item, data) {
    item.state = "ready";
    item.data = data;
    item.chip.dataset.state = "ready";
    item.chip.dataset.attachmentId = data.id;
    item.chip.querySelector("progress")?.remove();
    item.chip.querySelector(".attach-meta").textContent = formatSize(data.size, this.strings.sizeUnits);
    item.chip.querySelector(".attach-name").textContent = data.name;
    if (data.kind === "image" && data.thumb_url) this.setThumb(item, data.thumb_url);
  }

  /** Remove a chip and its upload (still uploading: cancelled; uploaded: deleted). */
  remove(item) {
    if (item.request) item.request.abort();
    if (item.state === "ready" && item.data) {
      fetch(urlFor(this.fileUrl, item.data.id), {
        method: "DELETE",
        headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" },
        credentials: "same-origin",
      }).catch(() => {}); // not deleted: removed with the other unsent files after a day
    }
    this.drop(item);
  }

  drop(item) {
    this.items = this.items.filter((candidate) => candidate !== item);
    item.chip.remove();
    this.list.hidden = !this.items.length;
  }
}
