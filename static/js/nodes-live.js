// Live node status on the fleet-nodes page: "node" messages of /ws/live/ (fleet/nodes/live.py),
// handed over by live.js as "rw:live" events (live.js loads first; its window.rwLive draws the
// times). A row opts in with [data-live-node=ID]; its cells
// [data-node-field=status|state|last_seen|version] follow the node. No inline handlers (CSP).
(function () {
  "use strict";

  var STATE = {
    online: ["Online", "badge-ok"],
    stale: ["Stale", "badge-accent"],
    offline: ["Offline", "badge-danger"],
    pending: ["Pending", "badge-accent"],
    revoked: ["Revoked", "badge-danger"]
  };
  var STATUS = { confirmed: "Confirmed", revoked: "Revoked" };
  var BADGES = ["badge-ok", "badge-accent", "badge-danger"];

  function setState(cell, state) {
    var known = STATE[state] || [state, ""];
    var badge = cell.querySelector(".badge");
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "badge";
      cell.textContent = "";
      cell.appendChild(badge);
    }
    BADGES.forEach(function (name) { badge.classList.remove(name); });
    if (known[1]) badge.classList.add(known[1]);
    badge.textContent = known[0];
  }

  function setSeen(cell, iso) {
    if (!iso) return;
    window.rwLive.setTime(cell, iso); // <time datetime=iso>now</time>, as live.js shows a poll
    cell.querySelector("time").title = new Date(iso).toLocaleString();
  }

  function applyNode(node) {
    if (!node || typeof node.id !== "number") return;
    document.querySelectorAll('[data-live-node="' + node.id + '"]').forEach(function (row) {
      row.querySelectorAll("[data-node-field]").forEach(function (cell) {
        var field = cell.getAttribute("data-node-field");
        if (field === "state") setState(cell, String(node.state));
        else if (field === "status") cell.textContent = STATUS[node.status] || String(node.status);
        else if (field === "last_seen") setSeen(cell, node.last_seen_at);
        else if (field === "version") cell.textContent = node.agent_version || "—";
      });
      row.setAttribute("data-node-state", String(node.state));
      row.setAttribute("data-node-status", String(node.status));
    });
  }

  document.addEventListener("rw:live", function (event) {
    var message = event.detail;
    if (message && message.type === "node") applyNode(message.node);
  });
})();
