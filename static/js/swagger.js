// The API docs page follows the app's theme: Swagger UI ships dark styles under html.dark-mode.
// A theme pinned in the app (data-theme, set by theme.js from localStorage) wins over the system.
(function () {
  "use strict";
  var root = document.documentElement;
  var media = window.matchMedia("(prefers-color-scheme: dark)");
  function apply() {
    var theme = root.getAttribute("data-theme") || (media.matches ? "dark" : "light");
    root.classList.toggle("dark-mode", theme === "dark");
  }
  apply();
  media.addEventListener("change", apply);
})();
