// Live updates for sealsync ui: the server sends a page's content again whenever what it
// shows changed; this swaps it in, keeping which tree branches the reader had closed.
"use strict";
(function () {
  var main = document.getElementById("main");
  var status = document.getElementById("live-status");
  var path = main && main.getAttribute("data-live");
  if (!path || !window.EventSource) {
    return;
  }
  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }
  // The first event repeats what the server just rendered; later ones are changes, after
  // which an alert about the last action is no longer about what the page shows.
  var seen = 0;
  if (window.history && window.history.replaceState && window.location.search) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  var source = new EventSource(path);
  source.addEventListener("open", function () {
    say("Live: following the cluster.");
  });
  source.addEventListener("error", function () {
    say("Live updates paused; reconnecting…");
  });
  source.addEventListener("main", function (event) {
    var closed = {};
    var details = main.querySelectorAll("details[data-key]");
    for (var i = 0; i < details.length; i++) {
      if (!details[i].open) {
        closed[details[i].getAttribute("data-key")] = true;
      }
    }
    main.innerHTML = event.data;
    seen += 1;
    if (seen > 1) {
      var flash = document.querySelector(".flash");
      if (flash) {
        flash.remove();
      }
    }
    details = main.querySelectorAll("details[data-key]");
    for (var j = 0; j < details.length; j++) {
      if (closed[details[j].getAttribute("data-key")]) {
        details[j].open = false;
      }
    }
    main.setAttribute("data-updated", String(Date.now()));
    say("Live: updated " + new Date().toLocaleTimeString() + ".");
  });
})();
