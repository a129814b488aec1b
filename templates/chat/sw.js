// The service worker of chat_ai, served at the site's root (chat/pwa_views.py) so that its
// scope is the whole site. What it does, and no more:
//   - installing: stores the offline page and the static files of the page's shell
//     (CONFIG.precache, listed by the server) in a cache named after CONFIG.version;
//   - page loads (navigations): the network first, always; when the server cannot be
//     reached, the stored offline page ("You are offline"). Pages are never stored:
//     conversations stay on the server, and the next person on this browser sees none;
//   - the shell's static files: from the cache first when their names are hashed
//     (CONFIG.cacheFirst), else from the network first with the cache as the fallback;
//   - everything else (the API, reply streams, POST requests, attachments, other
//     sites): not handled here, so the browser fetches it as if there were no worker.
// A new version (any precached file or the offline page changed) replaces the old one at
// once and deletes its cache.
{% autoescape off %}const CONFIG = {{ config }};{% endautoescape %}
const CACHE_PREFIX = "chat-ai-shell-";
const CACHE = `${CACHE_PREFIX}${CONFIG.version}`;
const OFFLINE_URL = new URL(CONFIG.offline, self.location.origin).href;
const PRECACHED = new Set(CONFIG.precache.map((url) => new URL(url, self.location.origin).href));

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // From the server, not from the HTTP cache: the files of this version.
      await cache.addAll([OFFLINE_URL, ...PRECACHED].map((url) => new Request(url, { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE) await caches.delete(name);
      }
      // Page loads start while the worker wakes up, not after.
      if (self.registration.navigationPreload) await self.registration.navigationPreload.enable();
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  if (request.mode === "navigate") {
    event.respondWith(pageOrOffline(event));
    return;
  }
  if (PRECACHED.has(request.url)) event.respondWith(shellFile(request));
});

/** A page from the server; the stored offline page when the server cannot be reached. */
async function pageOrOffline(event) {
  try {
    const preloaded = await event.preloadResponse;
    if (preloaded) return preloaded;
    return await fetch(event.request);
  } catch {
    const offline = await caches.match(OFFLINE_URL, { cacheName: CACHE });
    return offline ?? Response.error();
  }
}

/** One of the shell's static files, by CONFIG.cacheFirst (see the top of this file). */
async function shellFile(request) {
  const cache = await caches.open(CACHE);
  if (CONFIG.cacheFirst) {
    const stored = await cache.match(request, { ignoreVary: true });
    return stored ?? fetch(request);
  }
  try {
    return await fetch(request);
  } catch (error) {
    const stored = await cache.match(request, { ignoreVary: true });
    if (stored) return stored;
    throw error;
  }
}
