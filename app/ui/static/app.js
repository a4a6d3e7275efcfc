/* taskexec dashboard: the few behaviours htmx does not cover. */
(function () {
  "use strict";
  var LOG_LINES_KEPT = 1000;

  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) { return; }
    box.textContent = message;
    box.hidden = false;
  }

  // A refused action (409, 403, ...) says why, in the page's alert region.
  document.body.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var message = "The server answered " + xhr.status + ".";
    try {
      var problem = JSON.parse(xhr.responseText);
      if (problem && problem.detail) { message = problem.detail; }
    } catch (e) { /* not JSON: keep the status line */ }
    flash(message);
  });
  document.body.addEventListener("htmx:sendError", function () {
    flash("The server could not be reached.");
  });

  // The log tail follows new lines while the reader is at its bottom, and stays bounded.
  document.body.addEventListener("htmx:sseBeforeMessage", function (event) {
    var log = event.target;
    if (log && log.id === "log") {
      log.dataset.follow = String(log.scrollTop + log.clientHeight >= log.scrollHeight - 24);
    }
  });
  document.body.addEventListener("htmx:sseMessage", function (event) {
    var log = event.target;
    if (!log || log.id !== "log") { return; }
    var empty = document.getElementById("log-empty");
    if (empty) { empty.remove(); }
    while (log.children.length > LOG_LINES_KEPT) { log.removeChild(log.firstElementChild); }
    if (log.dataset.follow !== "false") { log.scrollTop = log.scrollHeight; }
  });
  var log = document.getElementById("log");
  if (log) { log.scrollTop = log.scrollHeight; }
})();
