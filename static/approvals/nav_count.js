// The navigation's count of approvals waiting for me, refreshed from the portal's own
// database every 20 seconds through htmx. A timer rather than an hx-trigger attribute:
// a page whose own polling has stopped (a final batch) carries no polling trigger.
(function () {
  function refresh() {
    if (!window.htmx || document.hidden) return;
    document.querySelectorAll("[data-approvals-count]").forEach(function (el) {
      window.htmx.ajax("GET", el.getAttribute("data-approvals-count"), { target: el, swap: "outerHTML" });
    });
  }
  if (window.approvalsCountTimer) return;
  window.approvalsCountTimer = setInterval(refresh, 20000);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", refresh);
  else refresh();
})();
