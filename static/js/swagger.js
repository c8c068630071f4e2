// The API docs page follows the app's theme: Swagger UI ships dark styles under html.dark-mode.
// theme.js (loaded first) resolves the system preference or the theme pinned in the app.
(function () {
  "use strict";
  var root = document.documentElement;
  function apply() {
    root.classList.toggle("dark-mode", root.getAttribute("data-resolved-theme") === "dark");
  }
  apply();
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", apply);
})();
