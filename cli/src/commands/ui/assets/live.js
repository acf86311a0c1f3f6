// Live updates for sealsync ui: the server sends a page's content again whenever what it
// shows changed (all of it, or only the parts that changed), and this swaps it in, keeping
// which tree branches the reader had closed.
"use strict";
(function () {
  var main = document.getElementById("main");
  var status = document.getElementById("live-status");
  var path = main && main.getAttribute("data-live");
  if (!path || !window.EventSource) {
    return;
  }
  var SEPARATOR = "\n<!--sealsync-part-->\n";
  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }
  // Replaces the content of `element`, keeping closed what the reader closed and the focus
  // where the reader had it.
  function swap(element, html) {
    var focused = document.activeElement;
    var refocus = null;
    if (focused && focused !== document.body && element.contains(focused)) {
      var quote = window.CSS && CSS.escape ? CSS.escape : function (text) { return text; };
      if (focused.tagName === "BUTTON" && focused.value) {
        refocus = 'button[value="' + quote(focused.value) + '"]';
      } else if (focused.tagName === "SUMMARY" && focused.parentNode.getAttribute("data-key")) {
        refocus = 'details[data-key="' + quote(focused.parentNode.getAttribute("data-key")) + '"] > summary';
      }
    }
    var closed = {};
    var details = element.querySelectorAll("details[data-key]");
    for (var i = 0; i < details.length; i++) {
      if (!details[i].open) {
        closed[details[i].getAttribute("data-key")] = true;
      }
    }
    element.innerHTML = html;
    details = element.querySelectorAll("details[data-key]");
    for (var j = 0; j < details.length; j++) {
      if (closed[details[j].getAttribute("data-key")]) {
        details[j].open = false;
      }
    }
    if (refocus) {
      try {
        var again = element.querySelector(refocus);
        if (again) {
          again.focus();
        }
      } catch (ignored) {
        // A selector the page cannot parse: the focus is lost, nothing else.
      }
    }
  }
  // The first event repeats what the server just rendered; later ones are changes, after
  // which an alert about the last action is no longer about what the page shows.
  var seen = 0;
  function updated() {
    seen += 1;
    if (seen > 1) {
      var flash = document.querySelector(".flash");
      if (flash) {
        flash.remove();
      }
    }
    main.setAttribute("data-updated", String(Date.now()));
    say("Live: updated " + new Date().toLocaleTimeString() + ".");
  }
  if (window.history && window.history.replaceState && window.location.search) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  var source = new EventSource(path);
  source.addEventListener("open", function () {
    // A reconnect starts with the whole content again: not a change.
    seen = 0;
    say("Live: following the cluster.");
  });
  source.addEventListener("error", function () {
    say("Live updates paused; reconnecting…");
  });
  source.addEventListener("main", function (event) {
    swap(main, event.data);
    updated();
  });
  source.addEventListener("parts", function (event) {
    var parts = event.data.split(SEPARATOR);
    for (var i = 0; i < parts.length; i++) {
      var cut = parts[i].indexOf("\n");
      var id = parts[i].slice(0, cut);
      var part = main.querySelector('[data-part="' + id + '"]');
      if (part) {
        swap(part, parts[i].slice(cut + 1));
      }
    }
    updated();
  });
})();
