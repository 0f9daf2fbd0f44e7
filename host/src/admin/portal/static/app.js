// quench admin portal: progressive enhancement only. Every page works without this script.
// - The search box filters the table's rows as you type (the server filters on submit).
// - Escape closes the details flyout; opening one moves focus into it.
(function () {
  "use strict";
  var search = document.getElementById("q");
  var table = document.getElementById("restricted");
  var count = document.getElementById("count");
  if (search && table) {
    search.addEventListener("input", function () {
      var needle = search.value.trim().toLowerCase();
      var shown = 0;
      table.querySelectorAll("tbody tr[data-search]").forEach(function (row) {
        var match = needle === "" || row.getAttribute("data-search").indexOf(needle) !== -1;
        row.hidden = !match;
        if (match) { shown += 1; }
      });
      if (count) { count.textContent = shown + (shown === 1 ? " item" : " items"); }
    });
  }
  var flyout = document.getElementById("flyout");
  if (flyout) {
    var title = document.getElementById("flyout-title");
    if (title) { title.setAttribute("tabindex", "-1"); title.focus(); }
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        var close = document.getElementById("close-flyout");
        if (close) { window.location.href = close.getAttribute("href"); }
      }
    });
  }
})();
