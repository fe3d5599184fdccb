// sandi's service worker: it keeps the app shell (the page, its scripts
// and the module, by their content-hashed names) so that the page opens
// with its history when the server cannot be reached. The server fills in
// the list of files; a new version of any of them is a new list, hence a
// new worker, which replaces the cached shell. Nothing else is cached: the
// API always goes to the network.
"use strict";

const SHELL = [/*SHELL*/];
const CACHE = "sandi-shell";

self.addEventListener("install", (ev) => {
  ev.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    const keep = new Set(SHELL.map((u) => new URL(u, self.registration.scope).href));
    for (const req of await cache.keys()) {
      if (!keep.has(req.url)) await cache.delete(req);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (ev) => {
  const req = ev.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname === "/") {
    // The page: from the network when it answers, else the cached one.
    ev.respondWith((async () => {
      try {
        return await fetch(req);
      } catch (e) {
        const hit = await caches.match("/", { cacheName: CACHE });
        if (hit) return hit;
        throw e;
      }
    })());
    return;
  }
  if (/^\/web\/[^/]+\.[0-9a-f]{12}\.[a-z]+$/.test(url.pathname)) {
    // A hashed name never changes: the cached copy is the file.
    ev.respondWith((async () => (await caches.match(req, { cacheName: CACHE })) || fetch(req))());
  }
});
