// Loaded in <head> without defer so the stored theme applies before the first paint.
// data-theme pins light/dark (absent = follow the system); data-resolved-theme is what shows.
(function () {
  "use strict";
  var root = document.documentElement;
  var media = window.matchMedia("(prefers-color-scheme: dark)");
  root.classList.add("js");
  try {
    var stored = window.localStorage.getItem("rw-theme");
    if (stored === "light" || stored === "dark") root.setAttribute("data-theme", stored);
  } catch (e) { /* storage blocked: follow the system */ }
  function resolve() {
    root.setAttribute("data-resolved-theme", root.getAttribute("data-theme") || (media.matches ? "dark" : "light"));
  }
  resolve();
  media.addEventListener("change", resolve);
  window.rigwardenTheme = {
    toggle: function () {
      var next = root.getAttribute("data-resolved-theme") === "dark" ? "light" : "dark";
      var system = media.matches ? "dark" : "light";
      try {
        if (next === system) window.localStorage.removeItem("rw-theme");
        else window.localStorage.setItem("rw-theme", next);
      } catch (e) { /* not persisted */ }
      if (next === system) root.removeAttribute("data-theme");
      else root.setAttribute("data-theme", next);
      resolve();
      return next;
    }
  };
})();
