// The miner list and a miner's page: column chooser, multi-select, per-button confirmation and
// the add-miner dialog. Like app.js: no inline handlers (CSP), elements opt in with data-*.
(function () {
  "use strict";

  var COLUMNS_KEY = "rw-miner-columns";

  function on(type, selector, handler) {
    document.addEventListener(type, function (event) {
      var el = event.target instanceof Element ? event.target.closest(selector) : null;
      if (el) handler(event, el);
    });
  }

  // --- Column chooser: the hidden columns, kept in localStorage ---------------------------------
  function storedColumns() {
    try {
      var value = JSON.parse(window.localStorage.getItem(COLUMNS_KEY));
      return Array.isArray(value) ? value : null;
    } catch (e) { return null; }
  }

  function showColumns(host) {
    var hidden = storedColumns();
    if (hidden === null) hidden = (host.getAttribute("data-hide") || "").split(" ").filter(Boolean);
    host.setAttribute("data-hide", hidden.join(" "));
    host.querySelectorAll("[data-column-toggle]").forEach(function (box) {
      box.checked = hidden.indexOf(box.value) === -1;
    });
  }

  on("change", "[data-column-toggle]", function (event, box) {
    var host = box.closest("[data-columns]");
    if (!host) return;
    var hidden = [];
    host.querySelectorAll("[data-column-toggle]").forEach(function (other) {
      if (!other.checked) hidden.push(other.value);
    });
    host.setAttribute("data-hide", hidden.join(" "));
    try { window.localStorage.setItem(COLUMNS_KEY, JSON.stringify(hidden)); } catch (e) { /* not kept */ }
  });

  // --- Multi-select: rows, the page, "all matching"; the bulk buttons follow the count ----------
  function bulkState() {
    var form = document.getElementById("bulk-form");
    var results = document.getElementById("miner-results");
    if (!form || !results) return;
    var rows = results.querySelectorAll("[data-select-row]");
    var checked = results.querySelectorAll("[data-select-row]:checked").length;
    var page = results.querySelector("[data-select-page]");
    var everything = results.querySelector("[data-select-all-matching]");
    var banner = results.querySelector("[data-select-all-banner]");
    var wholePage = rows.length > 0 && checked === rows.length;
    if (page) {
      page.checked = wholePage;
      page.indeterminate = checked > 0 && !wholePage;
    }
    if (banner) banner.classList.toggle("is-shown", wholePage);
    if (everything && !wholePage) everything.checked = false;
    var total = Number(results.getAttribute("data-total")) || 0;
    var count = everything && everything.checked ? total : checked;
    var label = form.querySelector("[data-selected-count]");
    if (label) {
      label.textContent = count === 0 ? "Select miners to act on them"
        : count.toLocaleString() + " miner" + (count === 1 ? "" : "s") + " selected";
    }
    form.querySelectorAll("[data-needs-selection]").forEach(function (button) {
      button.disabled = count === 0;
    });
  }

  on("change", "[data-select-row], [data-select-all-matching]", bulkState);
  on("change", "[data-select-page]", function (event, box) {
    document.querySelectorAll("#miner-results [data-select-row]").forEach(function (row) {
      row.checked = box.checked;
    });
    bulkState();
  });

  // --- Confirmation of one button (a form with several actions confirms only the risky ones) ----
  on("click", "button[data-confirm]", function (event, button) {
    if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
  });

  // --- The add-miner dialog (the link opens /miners/add/ without JavaScript) --------------------
  on("click", "[data-dialog-open]", function (event, opener) {
    var dialog = document.getElementById(opener.getAttribute("data-dialog-open"));
    if (!dialog || typeof dialog.showModal !== "function") return;
    event.preventDefault();
    dialog.showModal();
    var first = dialog.querySelector("input:not([type=hidden]), select");
    if (first) first.focus();
  });
  on("click", "[data-dialog-close]", function (event, button) {
    var dialog = button.closest("dialog");
    if (dialog) dialog.close();
  });

  // Action panels (<details>): one open at a time; a click elsewhere or Escape closes them.
  document.addEventListener("toggle", function (event) {
    var panel = event.target;
    if (!(panel instanceof HTMLDetailsElement) || !panel.classList.contains("action-panel") || !panel.open) return;
    document.querySelectorAll("details.action-panel[open]").forEach(function (other) {
      if (other !== panel) other.open = false;
    });
  }, true);
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.action-panel[open]").forEach(function (panel) {
      if (!panel.contains(event.target) && !window.getSelection().toString()) panel.open = false;
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.action-panel[open]").forEach(function (panel) { panel.open = false; });
  });

  function refresh(root) {
    root.querySelectorAll("[data-columns]").forEach(showColumns);
    bulkState();
  }
  document.addEventListener("DOMContentLoaded", function () { refresh(document); });
  document.addEventListener("htmx:load", function () { bulkState(); });
})();
