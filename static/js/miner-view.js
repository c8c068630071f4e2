// The single-miner view (templates/fleet/miners/view.html). Reads the rig's own API through the
// proxy with the session (the server holds the rig's token or answers its digest challenge),
// polls it while the tab is visible, and writes through the proxy or the audited Fleet actions.
// One adapter per firmware API (ADAPTERS, picked by config.driver): ProtoOS REST, stock Antminer
// web CGI. Each turns its firmware's payloads into the shapes the render functions take, so the
// page and the renderers are shared. What the user may do is decided server-side and rendered
// into the page; the proxy refuses the same calls anyway. No innerHTML with miner data: every
// value is textContent.
(function () {
  "use strict";

  var configEl = document.getElementById("miner-view-config");
  if (!configEl) return;
  var config = JSON.parse(configEl.textContent);
  var PER_MINER = 2; // the proxy lets two requests per miner through at a time
  var inFlight = 0;
  var waiting = [];
  var timer = null;

  function $(selector, root) { return (root || document).querySelector(selector); }
  function field(name) { return $('[data-mv="' + name + '"]'); }
  function setText(name, text) { var el = field(name); if (el) el.textContent = text; }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function num(value, digits) {
    return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : null;
  }
  function ths(ghs) { var v = num(ghs / 1000, 1); return v === null ? "—" : v + " TH/s"; }
  function watts(w) { var v = num(w, 0); return v === null ? "—" : Number(v).toLocaleString() + " W"; }
  function celsius(c) { var v = num(c, 1); return v === null ? "—" : v + " °C"; }
  function duration(s) {
    if (typeof s !== "number") return "";
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return d ? d + " d " + h + " h" : h ? h + " h " + m + " min" : m + " min";
  }

  // --- Talking to the proxy ---------------------------------------------------------------------
  function ProxyError(status, message) { this.status = status; this.message = message; }

  // The proxy's {"error": "..."}, the rig's {"error": {"code", "message"}}, or a form's field errors.
  function errorText(data, status) {
    if (!data || typeof data !== "object") return typeof data === "string" && data ? data.slice(0, 300) : "HTTP " + status;
    var error = data.error;
    if (error && typeof error === "object") return error.message || error.code || JSON.stringify(error);
    if (error) return String(error);
    if (data.message || data.detail) return String(data.message || data.detail);
    return Object.keys(data).map(function (key) {
      var value = data[key];
      return key + ": " + (Array.isArray(value) ? value.map(function (v) { return typeof v === "object" ? JSON.stringify(v) : v; }).join(" ") : JSON.stringify(value));
    }).join("; ");
  }

  function slot() {
    if (inFlight < PER_MINER) { inFlight += 1; return Promise.resolve(); }
    return new Promise(function (resolve) { waiting.push(resolve); });
  }
  function release() {
    var next = waiting.shift();
    if (next) next(); else inFlight -= 1;
  }

  function call(method, url, body) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = config.csrf;
      if (body !== undefined) headers["Content-Type"] = "application/json";
    }
    return slot().then(function () {
      return fetch(url, {
        method: method,
        headers: headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
        if (!response.ok) throw new ProxyError(response.status, errorText(data, response.status));
        return data;
      });
    }, function (error) {
      if (error instanceof ProxyError) throw error;
      throw new ProxyError(0, "Rigwarden could not be reached (" + error.message + ")");
    }).finally(release);
  }
  function rig(method, path, body) { return call(method, config.proxy + path, body); }

  // --- The status banner: unreachable, credentials rejected, refused ---------------------------
  function describe(error) {
    if (error.status === 502 && /credentials/i.test(error.message)) return "Credentials rejected";
    if (error.status === 502) return "Miner unreachable";
    if (error.status === 504) return "The miner did not answer in time";
    if (error.status === 501) return "Not available";
    if (error.status === 403) return "Not allowed";
    if (error.status === 400 || error.status === 422) return "Refused"; // the rig's or the action's field errors
    if (error.status === 429 || error.status === 503) return "Busy";
    if (error.status === 0) return "Connection lost";
    return "The miner answered " + error.status;
  }
  function showStatus(error) {
    var box = document.getElementById("mv-status");
    if (!box) return;
    if (!error) { box.hidden = true; return; }
    $("[data-mv-status-title]", box).textContent = describe(error) + ":";
    $("[data-mv-status-text]", box).textContent = error.message;
    var link = $("[data-mv-status-link]", box);
    if (link) link.hidden = !(error.status === 502 && /credentials/i.test(error.message));
    box.hidden = false;
    box.setAttribute("data-status", String(error.status));
  }

  // --- Rendering --------------------------------------------------------------------------------
  function renderMining(m) {
    setText("hashrate", ths(m.average_hashrate_ghs));
    setText("hashrate_ideal", m.ideal_hashrate_ghs ? "ideal " + ths(m.ideal_hashrate_ghs) : "");
    if (!config.fleet_miner) { // else the fleet's telemetry fills them (renderFleetPower)
      setText("power", watts(m.power_usage_watts));
      setText("power_target", m.power_target_watts ? "target " + watts(m.power_target_watts) : "");
      setText("efficiency", num(m.power_efficiency_jth, 1) === null ? "—" : num(m.power_efficiency_jth, 1) + " J/TH");
    }
    setText("asic_temp", celsius(m.average_asic_temp_c));
    setText("board_temp", m.average_hb_temp_c ? "boards " + celsius(m.average_hb_temp_c) : "");
    setText("state", m.status || "—");
    var boards = m.hashboards_installed !== undefined ? m.hashboards_mining + " of " + m.hashboards_installed + " boards mining" : "";
    setText("uptime", [m.mining_uptime_s ? "mining for " + duration(m.mining_uptime_s) : "", boards].filter(Boolean).join(" · "));
  }

  // A firmware whose own API has no power figure (stock Antminer's web CGI): the fleet's latest
  // telemetry of the same rig (the poller reads it over another protocol), as the list and the
  // miner page show it, labelled with when it was polled.
  function fleetWatts(w) {
    if (typeof w !== "number" || !isFinite(w)) return "—";
    if (Math.abs(w) < 1000) return Math.round(w).toLocaleString() + " W";
    return w >= 1e6 ? (w / 1e6).toFixed(2) + " MW" : (w / 1000).toFixed(2) + " kW";
  }
  function renderFleetPower(miner) {
    var latest = miner && miner.latest;
    setText("power", fleetWatts(latest && latest.power_w));
    setText("efficiency", latest && num(latest.efficiency_jth, 1) !== null ? num(latest.efficiency_jth, 1) + " J/TH" : "—");
    var when = $("[data-mv-source-time]");
    if (when) when.textContent = latest && latest.updated_at ? "polled " + new Date(latest.updated_at).toLocaleTimeString() : "not polled yet";
  }
  function fleetPower() {
    // not the rig: a failure here leaves the last figures and says so, without the rig's banner
    return call("GET", config.fleet_miner).then(renderFleetPower, function () {
      var when = $("[data-mv-source-time]");
      if (when) when.textContent = "couldn't read the fleet's last poll";
    });
  }

  function table(headings, rows) {
    var wrap = el("div", "table-wrap");
    var t = el("table");
    var head = el("tr");
    headings.forEach(function (h) {
      var th = el("th", h.num ? "num" : "", h.label);
      th.scope = "col";
      head.append(th);
    });
    var thead = el("thead"); thead.append(head);
    var tbody = el("tbody");
    rows.forEach(function (cells) {
      var tr = el("tr");
      cells.forEach(function (cell, i) {
        var td = el("td", headings[i].num ? "num" : "");
        if (cell instanceof Node) td.append(cell); else td.textContent = cell === null || cell === undefined ? "—" : String(cell);
        tr.append(td);
      });
      tbody.append(tr);
    });
    t.append(thead, tbody);
    wrap.append(t);
    return wrap;
  }
  function fill(selector, content) {
    var host = $(selector);
    if (host) host.replaceChildren(content);
  }
  function muted(text) { return el("p", "muted", text); }
  function badge(text, ok) { return el("span", "badge " + (ok ? "badge-ok" : "badge-danger"), text); }
  function poolBadge(status) {
    var s = status || "—";
    var kind = /active|alive/i.test(s) ? " badge-ok" : /dead|error|fail|unreach/i.test(s) ? " badge-danger" : "";
    return el("span", "badge" + kind, s);
  }

  function heatClass(temp) {
    if (typeof temp !== "number") return "mv-tnone";
    var bucket = Math.max(0, Math.min(5, Math.floor((temp - 55) / 5) + 1));
    return "mv-t" + bucket;
  }

  function heatmap(board) {
    var asics = board.asics || [];
    var placed = asics.some(function (a) { return typeof a.column === "number"; });
    var columns = placed
      ? asics.reduce(function (most, a) { return Math.max(most, (a.column || 0) + 1); }, 1)
      : Math.max(1, Math.ceil(Math.sqrt(asics.length))); // a firmware without the chip layout
    var grid = el("div", "mv-heatmap");
    grid.setAttribute("role", "img");
    var temps = asics.map(function (a) { return a.temp_c; }).filter(function (t) { return typeof t === "number"; });
    var hottest = temps.length ? Math.max.apply(null, temps) : null;
    grid.setAttribute("aria-label", "Slot " + board.slot + ": " + asics.length + " ASICs, hottest " + celsius(hottest));
    grid.style.gridTemplateColumns = "repeat(" + columns + ", minmax(0, 1fr))";
    asics.forEach(function (a) {
      var cell = el("span", "mv-asic " + heatClass(a.temp_c));
      if (placed && typeof a.row === "number") {
        cell.style.gridRowStart = String(a.row + 1);
        cell.style.gridColumnStart = String((a.column || 0) + 1);
      }
      cell.title = (a.id || a.index) + ": " + celsius(a.temp_c) + ", " + ths(a.hashrate_ghs) + (a.freq_mhz ? ", " + a.freq_mhz + " MHz" : "");
      grid.append(cell);
    });
    return grid;
  }

  function renderBoards(stats) {
    if (!stats.length) { fill("[data-mv-boards]", muted("The miner reports no hashboards.")); return; }
    var wrap = el("div", "mv-boards");
    stats.forEach(function (b) {
      var card = el("div", "mv-board");
      card.setAttribute("data-mv-board", b.hb_sn || b.slot);
      var head = el("div", "mv-board-head");
      head.append(el("strong", "", "Slot " + b.slot), el("span", "muted small", b.hb_sn || ""), badge(b.status || "—", /running|mining/i.test(b.status || "")));
      var facts = el("p", "small mv-board-facts", [
        ths(b.hashrate_ghs) + " of " + ths(b.ideal_hashrate_ghs),
        b.power_usage_watts === undefined ? "" : watts(b.power_usage_watts),
        "ASIC " + celsius(b.avg_asic_temp_c) + " avg, " + celsius(b.max_asic_temp_c) + " max",
        b.inlet_temp_c === undefined ? "" : "in " + celsius(b.inlet_temp_c) + " / out " + celsius(b.outlet_temp_c),
        b.pcb_temp_c === undefined ? "" : "board " + celsius(b.pcb_temp_c),
      ].filter(Boolean).join(" · "));
      card.append(head, facts, heatmap(b));
      if (b.note) card.append(el("p", "muted small", b.note));
      wrap.append(card);
    });
    fill("[data-mv-boards]", wrap);
  }

  function renderCooling(c) {
    var text = "Mode " + (c.fan_mode || "—");
    if (typeof c.speed_percentage === "number") text += " · fans at " + c.speed_percentage + " %";
    if (c.fan_mode === "Auto" && typeof c.target_temperature_c === "number") text += " · target " + celsius(c.target_temperature_c);
    setText("cooling_mode", text);
    var fans = c.fans || [];
    fill("[data-mv-fans]", fans.length
      ? table([{ label: "Fan" }, { label: "Speed", num: true }, { label: "Duty", num: true }],
        fans.map(function (f) { return [f.slot, typeof f.rpm === "number" ? f.rpm.toLocaleString() + " rpm" : null, typeof f.percentage === "number" ? f.percentage + " %" : null]; }))
      : muted("No fans (immersion and hydro rigs have none)."));
    var mode = document.getElementById("mv-cooling-mode");
    if (mode && !mode.matches(":focus") && !mode.form.hasAttribute("data-dirty")) {
      mode.value = c.fan_mode === "Manual" ? "Manual" : "Auto";
      speedRequired(mode.form);
    }
  }
  // Manual runs the fans at a fixed speed, which every firmware needs with it (a ProtoOS rig
  // answers 400 without one): the field is required then, and the form says so before sending.
  function speedRequired(form) {
    var speed = form.elements.speed;
    if (speed) speed.required = form.elements.mode.value === "Manual";
  }
  document.addEventListener("change", function (event) {
    var form = event.target instanceof Element ? event.target.closest('[data-mv-form="cooling"]') : null;
    if (form) speedRequired(form);
  });

  function renderPsus(psus) {
    fill("[data-mv-psus]", psus.length
      ? table([{ label: "PSU" }, { label: "Model" }, { label: "Output", num: true }, { label: "Input", num: true }, { label: "Hotspot", num: true }],
        psus.map(function (p) {
          var power = p.power || {};
          var hot = (p.temperatures || []).filter(function (t) { return t.temperature_type === "hotspot"; })[0];
          return [p.slot, [p.manufacturer, p.model].filter(Boolean).join(" "), watts(power.output_power_mw / 1000), watts(power.input_power_mw / 1000), celsius(hot && hot.temperature_c)];
        }))
      : muted("The miner reports no power supplies."));
  }

  function renderPools(pools) {
    fill("[data-mv-pools]", pools.length
      ? table([{ label: "Pool" }, { label: "Worker" }, { label: "Status" }, { label: "Accepted", num: true }, { label: "Rejected", num: true }],
        pools.map(function (p) {
          return [el("span", "cell-wrap mono small", p.url), p.user, poolBadge(p.status), p.accepted, p.rejected];
        }))
      : muted("No pools configured."));
    var form = $('[data-mv-form="pools"]');
    if (form && !form.hasAttribute("data-dirty")) {
      var sorted = pools.slice().sort(function (a, b) { return (a.priority || 0) - (b.priority || 0); });
      for (var i = 0; i < 3; i += 1) {
        var pool = sorted[i] || {};
        document.getElementById("mv-pool-" + i + "-url").value = pool.url || "";
        document.getElementById("mv-pool-" + i + "-user").value = pool.user || "";
      }
    }
  }

  function renderErrors(body) {
    var list = Array.isArray(body) ? body : (body && (body.errors || body.error_list)) || [];
    if (!list.length) { fill("[data-mv-errors]", muted("No active errors.")); return; }
    var ul = el("ul", "list-plain");
    list.forEach(function (e) {
      var li = el("li", "", e.message || e.error_code || "Error");
      var where = [e.source, e.slot ? "slot " + e.slot : "", e.error_code].filter(Boolean).join(" · ");
      if (where) li.append(" ", el("span", "muted small", where));
      ul.append(li);
    });
    fill("[data-mv-errors]", ul);
  }

  function renderTarget(t) {
    var input = document.getElementById("mv-watts");
    var mode = document.getElementById("mv-mode");
    var form = input && input.form;
    if (!input || form.hasAttribute("data-dirty")) return;
    if (typeof t.power_target_min_watts === "number") input.min = t.power_target_min_watts;
    if (typeof t.power_target_max_watts === "number") input.max = t.power_target_max_watts;
    if (typeof t.power_target_watts === "number") input.value = t.power_target_watts;
    if (t.performance_mode) mode.value = t.performance_mode;
    if (input.min && input.max) setText("target_range", watts(Number(input.min)) + " to " + watts(Number(input.max)));
  }

  // --- The live loop ----------------------------------------------------------------------------
  function refresh() {
    var firstError = null;
    function part(path, render) {
      return rig("GET", path).then(render, function (error) { firstError = firstError || error; });
    }
    return Promise.all(adapter.reads(part, function (error) { firstError = firstError || error; })).then(function () {
      failures = firstError ? failures + 1 : 0;
      showStatus(firstError);
      var dot = $("[data-mv-live-dot]");
      if (dot) dot.classList.toggle("is-stale", !!firstError);
      var updated = $("[data-mv-updated]");
      if (updated) updated.textContent = (firstError ? "Last attempt " : "Live · updated ") + new Date().toLocaleTimeString() + (firstError ? " · next try in " : " · every ") + pollDelay() / 1000 + " s";
      document.body.setAttribute("data-mv-state", firstError ? "error" : "live");
    });
  }

  // an unreachable rig is asked less and less often (up to once a minute), and at the normal
  // pace again from the first answer
  var failures = 0;
  function pollDelay() { return Math.min(60000, config.poll_ms * Math.pow(2, Math.max(0, Math.min(failures, 5) - 1))); }
  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(tick, pollDelay());
  }
  function tick() {
    if (document.hidden) { schedule(); return; }
    refresh().finally(schedule);
  }
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { window.clearTimeout(timer); tick(); } });

  // --- Writes -----------------------------------------------------------------------------------
  function result(name, text, ok) {
    var node = $('[data-mv-form-result="' + name + '"]') || $("[data-mv-action-result]");
    node.textContent = text;
    node.className = "small " + (ok ? "mv-ok" : "error");
  }

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("[data-mv-action]") : null;
    if (!button || button.disabled) return;
    var key = button.getAttribute("data-mv-action");
    var action = adapter.actions[key];
    if (!action || !config.can[key] || (action.confirm && !window.confirm(action.confirm))) return;
    button.disabled = true;
    action.run().then(function (done) {
      if (typeof done === "string") result("action", done, true);
      return refresh();
    }, function (error) {
      result("action", describe(error) + ": " + error.message, false);
    }).finally(function () { button.disabled = false; });
  });

  document.addEventListener("input", function (event) {
    var form = event.target instanceof Element ? event.target.closest("[data-mv-form]") : null;
    if (form && form.getAttribute("data-mv-form") !== "logs") form.setAttribute("data-dirty", "");
  });

  function submitting(form, work) {
    var button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    return work().finally(function () { if (button) button.disabled = false; });
  }

  var FORMS = {
    power: function (form) { return adapter.power(form); },
    cooling: function (form) {
      speedRequired(form);
      var speed = form.elements.speed;
      if (speed.required && speed.value === "") { // a browser without constraint validation
        result("cooling", "Manual mode needs a fan speed (0 to 100 %).", false);
        speed.focus();
        return Promise.resolve();
      }
      return adapter.cooling(form);
    },
    pools: function (form) {
      var pools = [];
      for (var i = 0; i < 3; i += 1) {
        var url = document.getElementById("mv-pool-" + i + "-url").value.trim();
        if (!url) continue;
        var pool = { url: url, user: document.getElementById("mv-pool-" + i + "-user").value.trim() };
        var password = document.getElementById("mv-pool-" + i + "-password").value;
        if (password) pool.password = password;
        pools.push(pool);
      }
      if (!window.confirm("Point " + config.name + " at these pools? Hashrate goes where they say.")) return Promise.resolve();
      return call("POST", config.pools_action, { pools: pools }).then(function (body) {
        form.removeAttribute("data-dirty");
        jobResult("pools", "Saved", body);
      });
    },
    logs: function (form) {
      return loadLogs(form).then(function (text) {
        var pre = $("[data-mv-log]");
        pre.textContent = text || "(empty)";
        pre.hidden = false;
        pre.scrollTop = pre.scrollHeight;
        result("logs", "", true);
      });
    },
  };

  function loadLogs(form) {
    var lines = Math.max(1, Math.min(10000, Number(form.elements.lines.value) || 200));
    return adapter.logs(form.elements.source.value, lines);
  }

  // --- Adapters: one per firmware API -----------------------------------------------------------
  // Each has reads(part, failed) → the polls of one refresh; actions (the control buttons: run()
  // resolves to the text to show, or shows a job itself); power(form), cooling(form); logs(source,
  // lines) → text. Writes the firmware's one config body carries go through the audited actions.

  // The audited Fleet action <kind> on this miner (a job of one); shows the job in <name>'s result.
  function job(kind, params, name, lead) {
    return call("POST", config.actions[kind], params || {}).then(function (body) {
      jobResult(name, lead, body);
      return null;
    });
  }
  function jobResult(name, lead, body) {
    var job = body && body.job;
    var node = $('[data-mv-form-result="' + name + '"]') || $("[data-mv-action-result]");
    node.className = "small mv-ok";
    node.replaceChildren(lead + " as job #" + (job ? job.id : "?") + " (" + (job ? job.status : "queued") + "): ");
    if (job) {
      var link = el("a", "", "follow the job");
      link.href = config.job_page.replace("/0/", "/" + job.id + "/");
      node.append(link);
    }
  }
  function setMode(value) {
    var mode = document.getElementById("mv-mode");
    if (mode && value && !mode.matches(":focus") && !mode.form.hasAttribute("data-dirty")) mode.value = value;
  }
  function first(list) { return (Array.isArray(list) && list[0]) || {}; }
  function numbers(list) { return (Array.isArray(list) ? list : []).filter(function (v) { return typeof v === "number" && v > 0; }); }
  function mean(list) { var n = numbers(list); return n.length ? n.reduce(function (a, b) { return a + b; }, 0) / n.length : null; }
  function most(list) { var n = numbers(list); return n.length ? Math.max.apply(null, n) : null; }

  var PROTOOS = {
    reads: function (part, failed) {
      var boards = rig("GET", "/hashboards").then(function (body) {
        var info = (body && body["hashboards-info"]) || [];
        return Promise.all(info.map(function (b) {
          return rig("GET", "/hashboards/" + encodeURIComponent(b.hb_sn)).then(function (s) {
            return Object.assign({ slot: b.slot, hb_sn: b.hb_sn }, s["hashboard-stats"] || {});
          });
        }));
      }).then(renderBoards, failed);
      return [
        part("/mining", function (b) { renderMining((b && b["mining-status"]) || {}); }),
        part("/mining/target", renderTarget),
        part("/cooling", function (b) { renderCooling((b && b["cooling-status"]) || {}); }),
        part("/power-supplies", function (b) { renderPsus((b && (b.psus_info || b["psus-info"])) || []); }),
        part("/pools", function (b) { renderPools((b && b.pools) || []); }),
        part("/errors", renderErrors),
        boards,
      ];
    },
    actions: {
      blink: { run: function () { return rig("POST", "/system/locate?led_on_time=30").then(function () { return "Locate LED on for 30 s."; }); } },
      reboot: { run: function () { return rig("POST", "/system/reboot").then(function () { return "Reboot requested."; }); }, confirm: "Reboot " + config.name + "? It stops hashing for a few minutes." },
      start: { run: function () { return rig("POST", "/mining/start").then(function () { return "Mining started."; }); } },
      stop: { run: function () { return rig("POST", "/mining/stop").then(function () { return "Mining stopped."; }); }, confirm: "Stop mining on " + config.name + "?" },
    },
    power: function (form) {
      var body = { power_target_watts: Number(form.elements.watts.value), performance_mode: form.elements.mode.value };
      return rig("PUT", "/mining/target", body).then(function () {
        form.removeAttribute("data-dirty");
        result("power", "Power target set to " + watts(body.power_target_watts) + ".", true);
        return refresh();
      });
    },
    cooling: function (form) {
      var body = { mode: form.elements.mode.value };
      if (body.mode === "Manual" && form.elements.speed.value !== "") body.speed_percentage = Number(form.elements.speed.value);
      return rig("PUT", "/cooling", body).then(function () {
        form.removeAttribute("data-dirty");
        result("cooling", "Cooling set to " + body.mode + ".", true);
        return refresh();
      });
    },
    logs: function (source, lines) {
      return rig("GET", "/system/logs?source=" + encodeURIComponent(source) + "&lines=" + lines).then(function (body) {
        var content = body && body.logs ? body.logs.content : body;
        return Array.isArray(content) ? content.join("\n") : String(content || "");
      });
    },
  };

  // Stock Antminer: stats.cgi (hashrate, chains, fans, work mode), summary.cgi (health flags),
  // pools.cgi, get_miner_conf.cgi (work mode, fan control), get_blink_status.cgi, and the kernel
  // log. No power reading (the fleet's telemetry fills it, labelled: fleetPower), no PSU, no
  // per-ASIC figures: those parts are left out, not faked.
  var WORK_MODES = { 0: "Mining", 1: "Sleeping (stopped)", 2: "Low power" };
  var FLAGS = { rate: "Hashrate below normal", network: "No working pool", fans: "Fan fault", temp: "Temperature too high" };
  var antminerState = { blinking: false };
  function antminerBoards(stats) {
    return (stats.chain || []).map(function (c, i) {
      var hashing = typeof c.rate_real === "number" && c.rate_real > 0;
      var sensors = numbers(c.temp_chip);
      return {
        slot: typeof c.index === "number" ? c.index + 1 : i + 1,
        hb_sn: c.sn || "",
        status: c.asic_num === 0 ? "No chips found" : hashing ? "Mining" : "Not hashing",
        hashrate_ghs: c.rate_real,
        ideal_hashrate_ghs: c.rate_ideal,
        avg_asic_temp_c: mean(c.temp_chip),
        max_asic_temp_c: most(c.temp_chip),
        pcb_temp_c: mean(c.temp_pcb),
        asics: sensors.map(function (t, n) { return { id: "chip sensor " + (n + 1), temp_c: t, row: 0, column: n }; }),
        note: (c.asic_num || 0) + " ASICs; the firmware reports " + sensors.length + " chip temperature sensors, mapped here, not each ASIC.",
      };
    });
  }
  function antminerMining(stats, mode) {
    var chains = stats.chain || [];
    return {
      average_hashrate_ghs: typeof stats.rate_5s === "number" ? stats.rate_5s : stats.rate_avg,
      ideal_hashrate_ghs: stats.rate_ideal,
      average_asic_temp_c: mean([].concat.apply([], chains.map(function (c) { return c.temp_chip || []; }))),
      average_hb_temp_c: mean([].concat.apply([], chains.map(function (c) { return c.temp_pcb || []; }))),
      status: WORK_MODES[mode] || (mode === undefined ? "—" : "Work mode " + mode),
      mining_uptime_s: stats.elapsed,
      hashboards_installed: chains.length,
      hashboards_mining: chains.filter(function (c) { return c.rate_real > 0; }).length,
    };
  }
  function showBlink(on) {
    antminerState.blinking = on;
    var button = $('[data-mv-action="blink"]');
    if (button) button.textContent = on ? "Stop blinking" : "Blink LED";
  }

  var ANTMINER = {
    reads: function (part, failed) {
      var both = Promise.all([rig("GET", "/stats.cgi"), rig("GET", "/get_miner_conf.cgi")]).then(function (pair) {
        var s = first(pair[0] && pair[0].STATS), c = pair[1] || {};
        var mode = c["bitmain-work-mode"] !== undefined ? Number(c["bitmain-work-mode"]) : s["miner-mode"];
        renderMining(antminerMining(s, mode));
        renderBoards(antminerBoards(s));
        var manual = c["bitmain-fan-ctrl"] === true || c["bitmain-fan-ctrl"] === "true";
        renderCooling({
          fan_mode: manual ? "Manual" : "Auto",
          speed_percentage: manual ? Number(c["bitmain-fan-pwm"]) : undefined,
          fans: (s.fan || []).map(function (rpm, i) { return { slot: i + 1, rpm: rpm }; }),
        });
        setMode(mode === 2 ? "efficiency" : "maximum_hashrate");
      }, failed);
      return [
        both,
        fleetPower(),
        part("/summary.cgi", function (b) {
          var flags = first(b && b.SUMMARY).status || [];
          renderErrors(flags.filter(function (f) { return f.status === "e"; }).map(function (f) {
            return { message: FLAGS[f.type] || f.type + " fault", source: "summary", error_code: f.msg || "" };
          }));
        }),
        part("/pools.cgi", function (b) { renderPools((b && b.POOLS) || []); }),
        part("/get_blink_status.cgi", function (b) { showBlink(!!(b && (b.blink === true || b.blink === "true"))); }),
      ];
    },
    actions: {
      blink: {
        run: function () {
          var on = !antminerState.blinking;
          return rig("POST", "/blink.cgi", { blink: on ? "true" : "false" }).then(function (body) {
            var code = body && body.code;
            if (code !== "B000" && code !== "B100") throw new ProxyError(200, "the miner answered " + (code || "without a code"));
            showBlink(on);
            return on ? "LED blinking until you stop it." : "LED stopped.";
          });
        },
      },
      reboot: { run: function () { return job("reboot", {}, "action", "Reboot queued"); }, confirm: "Reboot " + config.name + "? It stops hashing for a few minutes." },
      start: { run: function () { return job("start_mining", {}, "action", "Start queued"); } },
      stop: { run: function () { return job("stop_mining", {}, "action", "Stop (sleep mode) queued"); }, confirm: "Stop mining on " + config.name + "?" },
    },
    power: function (form) {
      var mode = form.elements.mode.value;
      return job("set_power_target", { mode: mode }, "power", "Work mode change saved").then(function () {
        form.removeAttribute("data-dirty");
      });
    },
    cooling: function (form) {
      var params = { mode: form.elements.mode.value.toLowerCase() };
      if (params.mode === "manual" && form.elements.speed.value !== "") params.speed_percent = Number(form.elements.speed.value);
      return job("set_cooling", params, "cooling", "Cooling change saved").then(function () {
        form.removeAttribute("data-dirty");
      });
    },
    logs: function (source, lines) {
      return rig("GET", "/get_kernel_log.cgi").then(function (body) {
        var text = typeof body === "string" ? body : JSON.stringify(body || "");
        return text.replace(/\n$/, "").split("\n").slice(-lines).join("\n");
      });
    },
  };

  var ADAPTERS = { protoos: PROTOOS, antminer: ANTMINER };
  var adapter = ADAPTERS[config.driver] || PROTOOS;

  document.addEventListener("submit", function (event) {
    var form = event.target instanceof Element ? event.target.closest("[data-mv-form]") : null;
    if (!form) return;
    event.preventDefault();
    var name = form.getAttribute("data-mv-form");
    if (!config.can[name === "power" ? "power_target" : name]) return; // rendered disabled too
    submitting(form, function () { return FORMS[name](form); }).catch(function (error) {
      result(name, describe(error) + ": " + error.message, false);
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("[data-mv-download]") : null;
    if (!button || button.disabled || !config.can.logs) return;
    var form = button.form;
    button.disabled = true;
    loadLogs(form).then(function (text) {
      var blob = new Blob([text + "\n"], { type: "text/plain" });
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = config.name.replace(/[^A-Za-z0-9._-]+/g, "_") + "-" + form.elements.source.value + ".log";
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
      result("logs", "Downloaded " + link.download + ".", true);
    }, function (error) {
      result("logs", describe(error) + ": " + error.message, false);
    }).finally(function () { button.disabled = false; });
  });

  tick();
})();
