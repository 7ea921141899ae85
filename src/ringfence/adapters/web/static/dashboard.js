// ringfence dashboard: refresh the live part of a page without reloading it.
// The element with data-live="URL" is replaced by the HTML fragment at URL every few seconds.
// Forms stay outside the live part, so typing a reason is never interrupted.
(function () {
  "use strict";
  var PERIOD_MS = 2000;
  function refresh(el) {
    var url = el.getAttribute("data-live");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (resp) {
        if (resp.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname); return null; }
        return resp.ok ? resp.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          el.innerHTML = html;
          el.setAttribute("data-updated", String(Date.now()));
          refreshActions(el);
        }
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ })
      .finally(function () { window.setTimeout(function () { refresh(el); }, PERIOD_MS); });
  }
  // When the state shown live differs from the one the action buttons were made for, fetch the buttons
  // again -- unless someone is typing a reason (a field has focus or text), which is never thrown away.
  function refreshActions(live) {
    var card = live.querySelector("[data-state]");
    var actions = document.querySelector("[data-refresh]");
    if (!card || !actions || card.getAttribute("data-state") === actions.getAttribute("data-state")) { return; }
    var fields = actions.querySelectorAll("input:not([type=hidden])");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value || fields[i] === document.activeElement) { return; }
    }
    var wanted = card.getAttribute("data-state");
    fetch(actions.getAttribute("data-refresh"), { credentials: "same-origin" })
      .then(function (resp) { return resp.ok ? resp.text() : null; })
      .then(function (html) { if (html) { actions.innerHTML = html; actions.setAttribute("data-state", wanted); } })
      .catch(function () {});
  }
  function refreshClock() {
    fetch("/ui/live/clock", { credentials: "same-origin" })
      .then(function (resp) { return resp.ok ? resp.text() : null; })
      .then(function (html) { var c = document.getElementById("clock"); if (c && html) { c.innerHTML = html; } })
      .catch(function () {})
      .finally(function () { window.setTimeout(refreshClock, PERIOD_MS); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelectorAll("[data-live]");
    for (var i = 0; i < live.length; i++) {
      (function (el) { window.setTimeout(function () { refresh(el); }, PERIOD_MS); })(live[i]);
    }
    window.setTimeout(refreshClock, PERIOD_MS);
  });
})();
