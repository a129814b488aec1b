// Markdown rendered as a reply arrives: tables, code blocks and lists take shape while the
// text streams in. The text so far is rendered with markdown-it set up like the server's
// renderer (chat/markdown.py: CommonMark, GFM tables and strikethrough, raw HTML escaped,
// images shown as links) and sanitized by DOMPurify with the server's allow-list BEFORE
// anything touches the page. When the reply ends, the server's own sanitized HTML replaces
// it (ReplyStream does that), so the final HTML is always the server's.
//
// Both libraries are vendored in ../vendor/ (see its README.md) and loaded on demand: if
// either fails to load, replies stream as plain text, as they did before.

// The server's allow-list (chat/markdown.py, _HTML_TAGS and _HTML_ATTRIBUTES). MathML is
// left out: mathematics shows as its source until the server's rendering replaces it.
const ALLOWED_TAGS = [
  "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "kbd", "blockquote",
  "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
  "table", "thead", "tbody", "tr", "th", "td", "span", "div",
];
const ALLOWED_ATTR = ["href", "title", "class", "data-lang", "align", "start", "rel"];
// http, https and mailto links, and relative ones (the server's nh3 url_schemes).
const ALLOWED_URI_REGEXP = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i;
const SANITIZE = {
  ALLOWED_TAGS,
  ALLOWED_ATTR,
  ALLOWED_URI_REGEXP,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};
// As deep as the server lets blocks nest (its _MAX_NESTING).
const MAX_NESTING = 50;

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// --- markdown-it set up like chat/markdown.py -----------------------------------------------

function codeBlock(code, info) {
  // The server's _highlight() markup, without Pygments' colours (they come with the final HTML).
  const language = escapeHtml((info || "").trim().split(/\s+/)[0] || "");
  return `<pre class="code-block" data-lang="${language}"><code class="language-${language}">${escapeHtml(code)}</code></pre>`;
}

// Inline mathematics, kept whole so that "_" and "*" inside it do not turn into emphasis:
// $...$ and $$...$$ by Pandoc's rule (no space just inside, no digit right after the
// closing dollar), and \(...\). Shown as its source until the server's MathML arrives.
function mathInline(state, silent) {
  const src = state.src;
  const start = state.pos;
  let open;
  let close;
  if (src.startsWith("\\(", start)) {
    open = "\\(";
    close = "\\)";
  } else if (src.startsWith("$$", start)) {
    open = close = "$$";
  } else if (src[start] === "$") {
    open = close = "$";
  } else {
    return false;
  }
  const from = start + open.length;
  const end = src.indexOf(close, from);
  if (end === -1 || end === from) return false;
  const body = src.slice(from, end);
  if (open === "$" || open === "$$") {
    if (/^\s|\s$/.test(body) || /\d/.test(src[end + close.length] ?? "")) return false;
  }
  if (!silent) {
    const token = state.push("math_live", "code", 0);
    token.content = src.slice(start, end + close.length);
  }
  state.pos = end + close.length;
  return true;
}

function markLinkDepth(state) {
  // Images rendered inside a link (its text, or the alt of another image) show only their alt.
  const mark = (children, depth) => {
    for (const token of children) {
      depth += (token.type === "link_open") - (token.type === "link_close");
      if (token.type === "image") {
        token.meta = { ...(token.meta || {}), inLink: depth > 0 };
        mark(token.children || [], depth + 1);
      }
    }
  };
  for (const token of state.tokens) {
    if (token.type === "inline") mark(token.children || [], 0);
    // The server's sanitizer drops the alignment style of table cells: so do we.
    if (token.type === "th_open" || token.type === "td_open") {
      token.attrs = (token.attrs || []).filter(([name]) => name !== "style");
    }
  }
}

function configure(markdownit) {
  const md = markdownit("commonmark", {
    html: false, // raw HTML in a reply is shown as text
    linkify: false,
    maxNesting: MAX_NESTING,
    highlight: codeBlock,
  });
  md.enable(["table", "strikethrough"]);
  md.inline.ruler.before("escape", "math_live", mathInline);
  md.core.ruler.push("images_in_links", markLinkDepth);
  md.renderer.rules.math_live = (tokens, idx) => `<code class="math-source">${escapeHtml(tokens[idx].content)}</code>`;
  md.renderer.rules.image = (tokens, idx, options, env, self) => {
    // An image as a link to it (the page loads no remote images), as the server does.
    const token = tokens[idx];
    const alt = self.renderInline(token.children || [], options, env);
    if (token.meta?.inLink) return alt;
    const src = escapeHtml(token.attrGet("src") || "");
    const title = token.attrGet("title");
    const titleAttr = title ? ` title="${escapeHtml(title)}"` : "";
    return `<a href="${src}"${titleAttr} rel="noopener noreferrer nofollow">${alt || src}</a>`;
  };
  const linkOpen = md.renderer.rules.link_open || ((tokens, idx, options, env, self) => self.renderToken(tokens, idx, options));
  md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow");
    return linkOpen(tokens, idx, options, env, self);
  };
  return md;
}

// --- Loading ---------------------------------------------------------------------------------

let renderer = null; // {render(text) -> DocumentFragment} once both libraries loaded
let loading = null;

/**
 * Load markdown-it and DOMPurify (once). Resolves to true when live Markdown is available,
 * false when it is not (a library failed to load, or DOMPurify cannot sanitize in this
 * browser): replies then stream as plain text. Never rejects.
 */
export function loadMarkdown() {
  loading ??= Promise.all([import("../vendor/markdown-it.min.mjs"), import("../vendor/purify.es.mjs")])
    .then(([markdownModule, purifyModule]) => {
      const DOMPurify = purifyModule.default;
      if (!DOMPurify?.isSupported) return false;
      const md = configure(markdownModule.default);
      renderer = { render: (text) => DOMPurify.sanitize(md.render(text), SANITIZE) };
      return true;
    })
    .catch(() => false);
  return loading;
}

/**
 * Replace `target`'s children with `fragment`'s, keeping the leading ones that are equal
 * (a text being written only grows at its end: earlier paragraphs, and a selection in
 * them, stay as they are).
 */
export function patchChildren(target, fragment) {
  const fresh = [...fragment.childNodes];
  const current = [...target.childNodes];
  let same = 0;
  while (same < fresh.length && same < current.length && current[same].isEqualNode(fresh[same])) same++;
  for (const node of current.slice(same)) node.remove();
  target.append(...fresh.slice(same));
}

/** HTML already sanitized by the server (chat/markdown.py + nh3), as a DocumentFragment. */
export function serverFragment(html) {
  const template = document.createElement("template");
  template.innerHTML = html; // inert: nothing runs or loads while it is parsed
  return template.content;
}

/**
 * The text of one reply as it is written, shown in its content element. set(text) asks
 * for a render; renders happen at most once per animation frame (and at least a few
 * times a second in a background tab), and less often when the text is long enough for
 * a render to take a while.
 */
export class LiveText {
  /**
   * @param {HTMLElement} element the reply's [data-content]
   * @param {(render: () => void) => void} wrap called with each render, e.g. to keep
   *   the thread scrolled to the bottom around it
   */
  constructor(element, wrap = (render) => render()) {
    this.element = element;
    this.wrap = wrap;
    this.text = "";
    this.frame = 0;
    this.timer = 0;
    this.lastRender = 0;
    this.cost = 0; // ms the last render took
  }

  /** Show `text` (the whole text so far) at the next frame. */
  set(text) {
    this.text = text;
    if (this.frame || this.timer) return;
    const wait = Math.min(500, this.cost * 3) - (performance.now() - this.lastRender);
    if (wait > 16) {
      this.timer = setTimeout(() => this.flush(), wait);
      return;
    }
    this.frame = requestAnimationFrame(() => this.flush());
    // A hidden tab gets no animation frames: a timer keeps it roughly up to date.
    this.timer = setTimeout(() => this.flush(), 250);
  }

  /** Render now what is pending (nothing when nothing is). */
  flush() {
    const pending = this.frame || this.timer;
    this.cancel();
    if (pending) this.wrap(() => this.render());
  }

  /** Drop a pending render (the final HTML is about to replace the text). */
  cancel() {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
    this.frame = 0;
    this.timer = 0;
  }

  render() {
    const started = performance.now();
    const element = this.element;
    element.classList.add("stream-text");
    if (renderer) {
      element.classList.replace("is-plain", "is-markdown") || element.classList.add("is-markdown");
      patchChildren(element, renderer.render(this.text));
    } else {
      element.classList.add("is-plain");
      const node = element.childNodes.length === 1 && element.firstChild.nodeType === Node.TEXT_NODE ? element.firstChild : null;
      if (node) {
        if (node.data !== this.text) node.data = this.text;
      } else {
        element.replaceChildren(document.createTextNode(this.text));
      }
    }
    this.lastRender = performance.now();
    this.cost = this.lastRender - started;
  }
}
