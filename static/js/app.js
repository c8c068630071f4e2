// Behaviour for the server-rendered pages. No inline handlers anywhere (CSP script-src 'self'):
// elements opt in with data-* attributes and this file listens on the document.
(function () {
  "use strict";

  function on(type, selector, handler) {
    document.addEventListener(type, function (event) {
      var el = event.target instanceof Element ? event.target.closest(selector) : null;
      if (el) handler(event, el);
    });
  }

  function showMessage(text, level) {
    var box = document.getElementById("messages");
    if (!box) { window.alert(text); return; }
    var alert = document.createElement("div");
    alert.className = "alert alert-" + (level || "error");
    alert.setAttribute("role", "alert");
    var p = document.createElement("p");
    p.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.setAttribute("data-dismiss", "");
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    alert.append(p, close);
    box.append(alert);
  }

  // Theme toggle (state lives in theme.js, loaded in <head>).
  on("click", "[data-theme-toggle]", function (event, button) {
    var now = window.rigwardenTheme ? window.rigwardenTheme.toggle() : null;
    if (now) button.setAttribute("aria-label", now === "dark" ? "Switch to light theme" : "Switch to dark theme");
  });

  // Narrow screens: the nav collapses behind the menu button.
  on("click", "[data-nav-toggle]", function (event, button) {
    var open = document.body.classList.toggle("nav-open");
    button.setAttribute("aria-expanded", String(open));
  });

  // Org/site switchers submit on change (they have a visible button when JS is off).
  on("change", "select[data-autosubmit]", function (event, select) {
    if (select.form) select.form.requestSubmit();
  });

  // Dismissable alerts.
  on("click", "[data-dismiss]", function (event, button) {
    var alert = button.closest(".alert");
    if (alert) alert.remove();
  });

  // Confirmation for plain (non-htmx) destructive forms; htmx forms use hx-confirm.
  on("submit", "form[data-confirm]", function (event, form) {
    if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
  });

  // Copy a one-time secret. navigator.clipboard needs a secure context; plain-HTTP LAN
  // installs fall back to selecting the text and execCommand.
  on("click", "[data-copy]", function (event, button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    var label = button.textContent;
    function done() {
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = label; }, 2000);
    }
    function fallback() {
      source.focus();
      if (source.select) source.select();
      try { if (document.execCommand("copy")) done(); } catch (e) { /* the text stays selected */ }
    }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  });

  // Forms marked data-track-changes (the role matrix) highlight their Save button once edited;
  // form.elements also holds controls placed elsewhere with a form="…" attribute.
  on("change", "input, select, textarea", function (event, input) {
    var form = input.form;
    if (!form || !form.hasAttribute("data-track-changes")) return;
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.type === "submit") el.classList.add("dirty");
    });
  });

  // Tables marked data-sticky-head (the role matrix) keep their header's height in --sticky-head,
  // where the sticky group rows stop. The header grows with role names and descriptions.
  function trackStickyHeads(root) {
    root.querySelectorAll("[data-sticky-head]").forEach(function (wrap) {
      var head = wrap.querySelector("thead");
      if (!head || wrap.hasAttribute("data-sticky-tracked")) return;
      wrap.setAttribute("data-sticky-tracked", "");
      function measure() { wrap.style.setProperty("--sticky-head", head.offsetHeight + "px"); }
      measure();
      if (window.ResizeObserver) new ResizeObserver(measure).observe(head);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { trackStickyHeads(document); });
  document.addEventListener("htmx:load", function (event) {
    if (event.target instanceof Element) trackStickyHeads(event.target.parentElement || event.target);
  });

  // Close the user menu on outside click or Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.menu[open]").forEach(function (menu) { menu.removeAttribute("open"); });
  });

  // htmx: a request that ended on the sign-in page (session expired or revoked) reloads the
  // whole window there instead of swapping a login form into a table row.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var url = event.detail.xhr && event.detail.xhr.responseURL;
    if (url && url.indexOf("/accounts/login/") !== -1) {
      event.detail.shouldSwap = false;
      window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    }
  });
  // A row's inline error belongs to the last action on that row: the next action anywhere clears
  // it, so "The last owner can't be removed" doesn't linger next to an unrelated success.
  document.addEventListener("htmx:beforeRequest", function () {
    document.querySelectorAll(".row-error").forEach(function (el) { el.remove(); });
  });
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    // Django's CSRF failure page (templates/403_csrf.html) carries a marker: that 403 means the
    // page is stale (signed in or out in another tab), not that the role lacks a permission.
    var csrf = status === 403 && xhr.responseText && xhr.responseText.indexOf("data-csrf-failure") !== -1;
    var text = csrf ? "This page is out of date (you may have signed in or out in another tab). Reload the page and try again."
      : status === 403 ? "You don't have permission to do that in this organization."
      : status === 404 ? "That item doesn't exist any more. Reload the page to see the current state."
      : status === 405 ? "That action isn't allowed here."
      : "The server couldn't complete that (" + status + "). Try again; if it keeps failing, check the server logs.";
    showMessage(text, "error");
  });
  document.addEventListener("htmx:sendError", function () {
    showMessage("The server can't be reached. Check your connection and try again.", "error");
  });
})();
