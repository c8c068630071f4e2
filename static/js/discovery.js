// The discovery page, live from /ws/live/ ("discovery" messages: discovery/protocol.py): the
// run's progress bar and counters, and devices appearing as they are found. No inline
// handlers or styles (CSP). A reload shows the same state: it is in the database.
(function () {
  "use strict";

  var section = document.querySelector("[data-discovery-run]");
  if (!section) return;
  var runId = Number(section.getAttribute("data-discovery-run"));
  var STATUS = { queued: "Queued", running: "Running", done: "Done" };
  var OUTCOME = { ok: "OK", partial: "Partial", busy: "Node busy, retry shortly", timeout: "Timed out", rejected: "Rejected", failed: "Failed", "": "" };

  function field(name) { return section.querySelector('[data-run-field="' + name + '"]'); }
  function setText(name, value) { var el = field(name); if (el) el.textContent = String(value); }

  function applyRun(run) {
    // a late answer of the resync must not take a finished run back to running
    if (section.getAttribute("data-run-status") === "done" && run.status !== "done") return;
    setText("status", STATUS[run.status] || run.status);
    setText("outcome", OUTCOME[run.outcome] || run.outcome);
    ["probed", "total", "found", "new", "updated"].forEach(function (n) { setText(n, run[n]); });
    var bar = field("bar");
    if (bar) { bar.max = Math.max(1, run.total); bar.value = Math.min(run.probed, run.total); }
    var reasons = Object.keys(run.rejected || {}).map(function (r) { return r + ": " + run.rejected[r]; });
    setText("rejected", reasons.length ? reasons.join(", ") : "No rejections.");
    setText("error", run.error || "");
    section.setAttribute("data-run-status", run.status);
  }

  // the run history's row of any run (not only the one shown): status, found, new
  function applyHistory(run) {
    var row = document.querySelector('[data-history-run="' + Number(run.id) + '"]');
    if (!row) return;
    var status = STATUS[run.status] || run.status;
    if (run.outcome) status += " — " + (OUTCOME[run.outcome] || run.outcome);
    var cells = { status: status, found: run.found, "new": run.new };
    Object.keys(cells).forEach(function (name) {
      var el = row.querySelector('[data-history-field="' + name + '"]');
      if (el) el.textContent = String(cells[name]);
    });
  }

  function badge(text, kind) {
    var span = document.createElement("span");
    span.className = "badge " + kind;
    span.textContent = text;
    return span;
  }

  // the "Pairing" cell: the miner once paired, the refusal when not, "New" before
  function pairingCell(td, device) {
    td.textContent = "";
    if (device.miner !== null) {
      var link = document.createElement("a");
      link.href = (section.getAttribute("data-miner-url") || "").replace(/0\/?$/, Number(device.miner) + "/");
      link.textContent = "Paired";
      td.appendChild(link);
      if (device.pair_outcome === "default_password") {
        td.appendChild(document.createTextNode(" "));
        td.appendChild(badge("Factory password", "badge-accent"));
      }
    } else if (device.paired) {
      td.textContent = "Paired (to a miner you can't see)";
    } else if (device.pair_outcome) {
      td.appendChild(badge(device.pair_outcome === "auth_needed" ? "Needs credentials" : "Not paired", "badge-danger"));
      td.appendChild(document.createTextNode(" " + (device.pair_error || "")));
    } else {
      td.textContent = "New";
    }
  }

  function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }

  // Rows in address order, numerically as the server renders them (127.0.0.2 before
  // 127.0.0.10; IPv4 before IPv6), then by port.
  function addressKey(host, port) {
    var text = String(host || "");
    var parts = [];
    if (text.indexOf(":") < 0) {
      parts = [4].concat(text.split(".").map(function (p) { return Number(p) || 0; }));
    } else {
      var halves = text.toLowerCase().split("::");
      var head = halves[0] ? halves[0].split(":") : [];
      var tail = halves.length > 1 && halves[1] ? halves[1].split(":") : [];
      var groups = head.slice();
      for (var z = head.length + tail.length; z < 8; z++) groups.push("0");  // what "::" stands for
      groups = groups.concat(tail);
      parts = [6].concat(groups.map(function (g) { return parseInt(g, 16) || 0; }));
    }
    return parts.concat([Number(port) || 0]);
  }
  function before(a, b) {
    for (var i = 0; i < Math.max(a.length, b.length); i++) {
      if ((a[i] || 0) !== (b[i] || 0)) return (a[i] || 0) < (b[i] || 0);
    }
    return false;
  }
  function insertSorted(body, row, key) {
    var rows = body.querySelectorAll("tr[data-device]");
    for (var i = 0; i < rows.length; i++) {
      var other = addressKey(rows[i].getAttribute("data-host"), rows[i].getAttribute("data-port"));
      if (before(key, other)) { body.insertBefore(row, rows[i]); return; }
    }
    body.appendChild(row);
  }

  function applyDevice(device) {
    var body = section.querySelector("[data-discovery-devices]");
    if (!body) return;
    var shown = body.querySelector('[data-device="' + Number(device.id) + '"]');
    if (shown) {  // seen again, or paired: its pairing state moves on (never back)
      var address = shown.querySelector("[data-device-address]");
      if (address && shown.getAttribute("data-port") !== String(device.port)) {
        address.textContent = device.host + ":" + device.port;  // the port the row settled on
        shown.setAttribute("data-port", String(device.port));
      }
      if (!device.paired && !shown.querySelector('input[name="device"]')) return;
      var td = shown.querySelector("[data-device-pairing]");
      if (td) pairingCell(td, device);
      var box = shown.querySelector('input[name="device"]');
      if (box && device.paired) box.remove();
      return;
    }
    var row = document.createElement("tr");
    row.setAttribute("data-device", String(Number(device.id)));
    row.setAttribute("data-host", String(device.host));
    row.setAttribute("data-port", String(device.port));
    var pick = document.createElement("td");
    if (!device.paired) {
      var box = document.createElement("input");
      box.type = "checkbox"; box.name = "device"; box.value = String(Number(device.id));
      box.setAttribute("aria-label", "Select " + device.host + ":" + device.port);
      pick.appendChild(box);
    }
    row.appendChild(pick);
    var where = cell(device.host + ":" + device.port);
    where.setAttribute("data-device-address", "");
    row.appendChild(where);
    row.appendChild(cell(device.driver));
    row.appendChild(cell((device.make + " " + device.model).trim()));
    row.appendChild(cell(device.firmware || "—"));
    row.appendChild(cell(device.serial || "—"));
    row.appendChild(cell(device.mac || "—"));
    var pairing = document.createElement("td");
    pairing.setAttribute("data-device-pairing", "");
    pairingCell(pairing, device);
    row.appendChild(pairing);
    insertSorted(body, row, addressKey(device.host, device.port));
    var empty = section.querySelector("[data-discovery-empty]");
    if (empty) empty.hidden = true;
  }

  // Whatever happened while no socket listened (the page rendering, a reconnect: a pairing
  // job may finish before the socket opens) is read back once the socket is open.
  function getJSON(url) {
    return window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); });
  }
  function resync() {
    getJSON("/api/v1/discovery/runs/" + runId + "/").then(function (run) {
      applyHistory(run);
      applyRun(run);
    }).catch(function () {});
    getJSON("/api/v1/discovery/devices/?run=" + runId + "&page_size=500").then(function (page) {
      (page.results || []).forEach(applyDevice);
    }).catch(function () {});
  }

  var backoff = 1000;
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/ws/live/");
    var pinger = null;
    socket.addEventListener("open", function () {
      backoff = 1000;
      document.body.setAttribute("data-live-state", "open");
      pinger = window.setInterval(function () { socket.send(JSON.stringify({ type: "ping" })); }, 30000);
      resync();
    });
    socket.addEventListener("message", function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (!message || message.type !== "discovery" || !message.run) return;
      applyHistory(message.run);
      if (message.run.id !== runId) return;
      applyRun(message.run);
      (message.devices || []).forEach(applyDevice);
    });
    socket.addEventListener("close", function (event) {
      window.clearInterval(pinger);
      document.body.setAttribute("data-live-state", "closed");
      if (event.code === 4401) { window.location.reload(); return; }
      if (event.code === 4403) return;
      window.setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    });
  }
  connect();
})();
