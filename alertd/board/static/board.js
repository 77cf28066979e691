// alertd board: progressive enhancement only; every page works without it.
(function () {
  "use strict";
  // the incident list reloads itself every data-refresh seconds while visible and idle
  var seconds = Number(document.body.getAttribute("data-refresh") || 0);
  if (seconds > 0) {
    window.setInterval(function () {
      var el = document.activeElement;
      var busy = el && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
      if (document.visibilityState === "visible" && !busy) {
        window.location.reload();
      }
    }, seconds * 1000);
  }
  // buttons with data-confirm (resolve, remove) ask first
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-confirm]") : null;
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
})();
