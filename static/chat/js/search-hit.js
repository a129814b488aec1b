// Opening a search result: /c/<id>/?q=...&hit=<message id> scrolls to the message that
// matched and marks every match of the query in the thread (CSS Custom Highlight API: no
// change to the HTML).

/** Scroll to the hit and highlight the query in `threadInner`'s messages. */
export function showSearchHit(threadInner) {
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
