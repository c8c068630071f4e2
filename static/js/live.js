// Live updates of the fleet pages from /ws/live/ (message shapes: fleet/protocol.py).
// Loaded only on the fleet pages (their {% block live %} in base.html). Elements opt in with
// data-*; no inline handlers or styles (CSP):
//   [data-live-miner=ID] [data-live-field=hashrate|power|efficiency|temp|health|state|updated]
//       cells of one miner (list rows, a miner's KPIs), updated from telemetry deltas;
//       [data-live-stale] cells grey out and [data-live-stale-note] notes show while the
//       miner doesn't report (the delta's `stale`);
//   [data-live-region]  a fragment (with an id) refetched from this page's URL on "dropped"
//       and, with data-live-refresh="telemetry", at most every 10 s while telemetry arrives;
//   [data-live-job=ID]  a job's progress, updated from "job" messages.
// Every message is also dispatched on document as a "rw:live" CustomEvent (detail: message).
(function () {
  "use strict";

  var PING_MS = 30000;
  var REFRESH_MS = 10000;
  var BACKOFF_MIN_MS = 1000;
  var BACKOFF_MAX_MS = 30000;
  var HEALTH = {
    ok: ["OK", "badge-ok"],
    degraded: ["Degraded", "badge-accent"],
    offline: ["Offline", "badge-danger"],
    auth_needed: ["Credentials needed", "badge-danger"],
    default_password: ["Default password", "badge-accent"],
    unknown: ["Not polled yet", ""]
  };
  var JOB = {
    queued: ["Queued", ""],
    running: ["Running", "badge-accent"],
    done: ["Done", "badge-ok"],
    cancelled: ["Cancelled", "badge-danger"]
  };
  var BADGES = ["badge-ok", "badge-accent", "badge-danger"];

  // --- Figures as the server writes them (fleet/templatetags/fleet_ui.py) ----------------------
  function isNumber(value) { return typeof value === "number" && isFinite(value); }

  function fixed(number, digits) {
    return number.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function scaled(value, units, digits) {
    if (!isNumber(value)) return "—";
    var number = value, unit = units[0];
    for (var i = 1; i < units.length; i++) {
      if (Math.abs(number) < 1000) break;
      number = number / 1000;
      unit = units[i];
    }
    return fixed(number, digits) + " " + unit;
  }

  var format = {
    hashrate: function (v) { return scaled(v, ["TH/s", "PH/s", "EH/s"], 1); },
    power: function (v) {
      if (isNumber(v) && Math.abs(v) < 1000) return fixed(v, 0) + " W";
      return scaled(v, ["W", "kW", "MW"], 2);
    },
    temp: function (v) { return isNumber(v) ? fixed(v, 0) + " °C" : "—"; },
    efficiency: function (v) { return isNumber(v) ? fixed(v, 1) + " J/TH" : "—"; }
  };

  function capfirst(text) { return text ? text.charAt(0).toUpperCase() + text.slice(1) : "—"; }

  function setBadge(badge, label, cls) {
    BADGES.forEach(function (name) { badge.classList.remove(name); });
    if (cls) badge.classList.add(cls);
    badge.textContent = label;
  }

  function pulse(el) {
    // a visible mark for a changed health; the Web Animations API is not an inline style
    if (typeof el.animate !== "function") return;
    el.animate([{ boxShadow: "0 0 0 4px currentColor" }, { boxShadow: "0 0 0 0 transparent" }],
      { duration: 1600, iterations: 2 });
  }

  // --- Telemetry: one miner's cells -------------------------------------------------------------
  // A delta's figures are the miner's last when it doesn't report (`stale`, fleet/health.py
  // REPORTING): shown greyed with a "last seen" note, and the state cell says so.
  function applyDelta(delta) {
    var hosts = document.querySelectorAll('[data-live-miner="' + Number(delta.id) + '"]');
    var stale = typeof delta.stale === "boolean" ? delta.stale : delta.health === "offline";
    hosts.forEach(function (host) {
      host.querySelectorAll("[data-live-field]").forEach(function (cell) {
        var field = cell.getAttribute("data-live-field");
        if (field === "hashrate") cell.textContent = format.hashrate(delta.hashrate_ths);
        else if (field === "power") cell.textContent = format.power(delta.power_w);
        else if (field === "efficiency") cell.textContent = format.efficiency(delta.efficiency_jth);
        else if (field === "temp") cell.textContent = format.temp(delta.max_temp_c);
        else if (field === "state") cell.textContent = stale ? "Not reporting" : capfirst(delta.state);
        else if (field === "health") updateHealth(cell, delta.health);
        else if (field === "updated" && delta.updated_at) updateTime(cell, delta.updated_at);
      });
      host.querySelectorAll("[data-live-stale]").forEach(function (cell) {
        cell.classList.toggle("stale", stale);
      });
      host.querySelectorAll("[data-live-stale-note]").forEach(function (note) {
        note.hidden = !stale;
      });
      host.setAttribute("data-live-health", delta.health);
    });
  }

  function updateHealth(cell, health) {
    var known = HEALTH[health] || [health, ""];
    var badge = cell.classList.contains("badge") ? cell : cell.querySelector(".badge");
    var before = cell.getAttribute("data-health");
    if (badge) setBadge(badge, known[0], known[1]);
    else cell.textContent = known[0];
    cell.setAttribute("data-health", health);
    if (before && before !== health) {
      cell.setAttribute("data-health-changed", before + " → " + health);
      cell.title = "Was " + (HEALTH[before] || [before])[0];
      pulse(badge || cell);
    }
  }

  function updateTime(cell, iso) {
    var time = cell.querySelector("time");
    if (!time) {
      cell.textContent = "";
      time = document.createElement("time");
      cell.appendChild(time);
    }
    time.setAttribute("datetime", iso);
    time.textContent = "now";
  }

  // --- Jobs ---------------------------------------------------------------------------------------
  function applyJob(job) {
    var hosts = document.querySelectorAll('[data-live-job="' + Number(job.id) + '"]');
    hosts.forEach(function (host) {
      var finished = (job.done || 0) + (job.failed || 0);
      var status = JOB[job.status] || [capfirst(job.status), ""];
      var badge = host.querySelector("[data-live-job-status]");
      if (badge) setBadge(badge, status[0], status[1]);
      [["done", job.done], ["failed", job.failed], ["total", job.total]].forEach(function (pair) {
        var el = host.querySelector('[data-live-job-count="' + pair[0] + '"]');
        if (el && isNumber(pair[1])) el.textContent = pair[1].toLocaleString("en-US");
      });
      var bar = host.querySelector("progress");
      if (bar) {
        bar.max = job.total;
        bar.value = finished;
        bar.setAttribute("aria-label", finished + " of " + job.total + " miners finished");
        bar.textContent = finished + " / " + job.total;
      }
      // per-miner results and the end of polling come from the server's own fragment
      if (job.status === "done" || job.status === "cancelled") refresh(host.id ? [host] : null);
    });
  }

  // --- Fragments refetched from this page's URL ----------------------------------------------------
  var fetching = false;
  var lastRefresh = 0;
  var trailing = null;

  function refresh(only) {
    var regions = only || Array.prototype.slice.call(document.querySelectorAll("[data-live-region][id]"));
    if (!regions.length || fetching) return;
    fetching = true;
    lastRefresh = Date.now();
    window.fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/accounts/login/") !== -1) {
          window.location.reload();
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        regions.forEach(function (region) {
          var current = document.getElementById(region.id);
          var next = fresh.getElementById(region.id);
          if (!current || !next) return;
          if (current.querySelector("[data-select-row]:checked")) return;  // keep a selection
          var node = document.importNode(next, true);
          current.replaceWith(node);
          if (window.htmx) window.htmx.process(node);
        });
        document.dispatchEvent(new CustomEvent("live:refreshed"));
      })
      .catch(function () { /* the next telemetry or reconnect tries again */ })
      .then(function () { fetching = false; });
  }

  function refreshSoon() {
    // at most every REFRESH_MS: now if the last one is older, else once at the end of the window
    var regions = Array.prototype.slice.call(document.querySelectorAll('[data-live-region][id][data-live-refresh~="telemetry"]'));
    if (!regions.length || trailing) return;
    var wait = lastRefresh + REFRESH_MS - Date.now();
    if (wait <= 0) { refresh(regions); return; }
    trailing = window.setTimeout(function () { trailing = null; refresh(regions); }, wait);
  }

  // --- The socket ----------------------------------------------------------------------------------
  var socket = null;
  var pinger = null;
  var backoff = BACKOFF_MIN_MS;
  var stopped = false;

  function handle(message) {
    if (!message || typeof message.type !== "string") return;
    if (message.type === "telemetry" && Array.isArray(message.miners)) {
      message.miners.forEach(applyDelta);
      if (message.miners.length) refreshSoon();
    } else if (message.type === "health" && message.to) {
      document.querySelectorAll('[data-live-miner="' + Number(message.miner) + '"] [data-live-field="health"]')
        .forEach(function (cell) { updateHealth(cell, message.to); });
    } else if (message.type === "job" && message.job) {
      applyJob(message.job);
    } else if (message.type === "dropped") {
      refresh(null);
    }
    document.body.setAttribute("data-live-last", message.type);
    // other page scripts (e.g. nodes-live.js) take the message types they know
    document.dispatchEvent(new CustomEvent("rw:live", { detail: message }));
  }

  function connect() {
    if (stopped) return;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/live/");
    socket.addEventListener("open", function () {
      backoff = BACKOFF_MIN_MS;
      document.body.setAttribute("data-live-state", "open");
      pinger = window.setInterval(function () {
        if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
      }, PING_MS);
    });
    socket.addEventListener("message", function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      handle(message);
    });
    socket.addEventListener("close", function (event) {
      window.clearInterval(pinger);
      socket = null;
      document.body.setAttribute("data-live-state", "closed");
      if (event.code === 4401) { stopped = true; window.location.reload(); return; }
      if (event.code === 4403) { stopped = true; return; }
      var wait = backoff + Math.floor(Math.random() * backoff / 2);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      window.setTimeout(function () {
        if (stopped) return;
        connect();
        refresh(null);  // what happened while closed
      }, wait);
    });
  }

  function start() {
    if (!("WebSocket" in window) || socket) return;
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();

  window.addEventListener("pagehide", function () {
    stopped = true;
    if (socket) socket.close(1000);
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { stopped = false; start(); }  // back from the bfcache
  });
  // for tests and the console: the formatting, without a socket
  window.rwLive = { format: format, handle: handle, setTime: updateTime };
})();
