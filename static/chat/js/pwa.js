// The installable web app, on every page: registers the service worker (its URL is on the
// manifest's <link> in base.html; the worker itself is templates/chat/sw.js), says so
// while the browser is offline (the banner of base.html), and on the offline page the
// worker shows (templates/offline.html) goes back to the page asked for as soon as the
// server answers again.

import { sleep } from "./dom.js";

const RETRY_FIRST_MS = 3000; // the offline page asks the server again after this...
const RETRY_MAX_MS = 30_000; // ...then less and less often, down to this

function registerServiceWorker() {
  const url = document.querySelector("link[rel=manifest][data-service-worker]")?.dataset.serviceWorker;
  if (!url || !("serviceWorker" in navigator)) return;
  const register = () =>
    navigator.serviceWorker.register(url).catch(() => {
      // Not allowed here (a plain-http address other than localhost, private browsing):
      // the site works as before, only not offline.
    });
  // After the page has loaded: the worker's downloads do not compete with the page's.
  if (document.readyState === "complete") register();
  else window.addEventListener("load", register, { once: true });
}

/** The banner of base.html: shown (and read out) while the browser is offline. */
function watchConnection() {
  const banner = document.getElementById("offline-banner");
  if (!banner) return;
  const show = (offline) => {
    banner.hidden = !offline;
    // Filled in after it is shown, so that screen readers announce the change.
    requestAnimationFrame(() => {
      banner.textContent = offline ? banner.dataset.offline : "";
    });
  };
  window.addEventListener("offline", () => show(true));
  window.addEventListener("online", () => show(false));
  if (!navigator.onLine) show(true);
}

/** The offline page: back to the page asked for once the server answers. */
function retryWhenOnline(page) {
  // The worker shows this page at the address asked for; at /offline/ itself, the
  // retry goes to the conversations (the link's own address).
  const retry = page.querySelector("[data-offline-retry]");
  const goBack = () => {
    if (window.location.pathname === page.dataset.offlineUrl) window.location.href = retry.href;
    else window.location.reload();
  };
  retry.addEventListener("click", (event) => {
    event.preventDefault();
    goBack();
  });
  window.addEventListener("online", goBack);
  // The network may be up while the server is not (or the browser not told): ask it.
  (async () => {
    for (let wait = RETRY_FIRST_MS; ; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
      await sleep(wait);
      try {
        const response = await fetch(page.dataset.healthUrl, { cache: "no-store", credentials: "same-origin" });
        if (response.ok) {
          goBack();
          return;
        }
      } catch {
        // still unreachable
      }
    }
  })();
}

registerServiceWorker();
const offlinePage = document.querySelector("[data-offline-page]");
if (offlinePage) retryWhenOnline(offlinePage);
else watchConnection();
