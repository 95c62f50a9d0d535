// sw.js: the softphone's service worker, only for notifications with Answer / Reject buttons (actions
// need a service worker). A click goes to the page as a message {type: "notification", action, callId}.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const callId = event.notification.data?.callId;
  event.waitUntil((async () => {
    const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const page of pages) {
      page.postMessage({ type: "notification", action: event.action || "focus", callId });
      if (event.action !== "reject" && "focus" in page) await page.focus();
    }
  })());
});
