/* The terminal workspace: tabs, each a grid of xterm.js panes, and a sidebar of your sessions.
 *
 * The shells live on the server (docs/terminals.md). A pane is a view of one session over
 * /ws/terminals/{id}/: it attaches with the last byte it rendered, writes the binary output
 * frames (8-byte big-endian seq, then bytes) into xterm and acknowledges what xterm rendered.
 * The layout (tabs, the session shown in each pane, columns, font size, and each tab's column
 * widths and row heights from the splitters of term-splitters.js) is kept in sessionStorage,
 * so a reload re-opens the same sessions; a fresh page has an empty screen,
 * so it attaches from 0 and the server replays its ring buffer (up to 1 MiB) into it.
 *
 * Close codes: 4401 the login expired (the session is parked): check the login and reattach,
 * at most 3 automatic retries a minute, then "session expired — sign in". 4409 another
 * replica, 4410/1000 the session ended, 4412 the host key changed, 4403/4404 refused.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-terminals]");
  if (!root || !window.Terminal || !window.rwSplitters) return;

  var STORE = "rw.terminals.v1";
  var INPUT_CHUNK = 16384; // characters per input frame (the server takes up to 64 KiB)
  var ACK_EVERY = 16384;
  var RETRIES_PER_MINUTE = 3;
  var ENDED = { 1000: "The shell exited.", 4410: "The session ended." };
  var REFUSED = {
    4403: "You no longer have terminal:open at this host's site.",
    4404: "No such session (or not yours).",
    4409: "This session is held by another server replica.",
    4412: "The host key changed: someone with terminal:manage must re-trust it.",
    4502: "The host is unreachable or refused the login.",
    4400: "The server refused a malformed message."
  };

  var csrf = root.getAttribute("data-csrf");
  var sessionsApi = root.getAttribute("data-sessions-api");
  var meApi = root.getAttribute("data-me-api");
  var grids = root.querySelector("[data-grids]");
  var tabsEl = root.querySelector("[data-tabs]");
  var listEl = root.querySelector("[data-session-list]");
  var expiredEl = root.querySelector("[data-expired]");
  var emptyEl = root.querySelector("[data-empty]");
  var noSessionsEl = root.querySelector("[data-no-sessions]");
  var openError = root.querySelector("[data-open-error]");

  var known = {}; // session id → {id, host_name, state, recording}
  JSON.parse(document.getElementById("term-sessions").textContent).forEach(function (s) {
    known[s.id] = s;
  });

  // --- layout state ---------------------------------------------------------------------
  // {tabs: [{id, name, panes: [session ids], colSizes?, rowSizes?}], active, next, columns,
  // font}; colSizes/rowSizes are the splitters' fractions (absent: equal tracks; older layouts
  // have none, and term-splitters.js drops any that don't fit the grid's shape)
  function load() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(STORE) || "null");
      if (saved && Array.isArray(saved.tabs) && saved.tabs.length) return saved;
    } catch (e) { /* a broken entry: start over */ }
    return { tabs: [{ id: 1, name: "Tab 1", panes: [] }], active: 1, next: 2, columns: "auto", font: 14 };
  }
  var state = load();
  function save() { sessionStorage.setItem(STORE, JSON.stringify(state)); }
  function tab(id) { return state.tabs.filter(function (t) { return t.id === id; })[0]; }
  function activeTab() { return tab(state.active) || state.tabs[0]; }

  var panes = {}; // session id → Pane
  var gridFor = {}; // tab id → grid element
  var splittersFor = {}; // tab id → its grid's splitters
  var activePane = null;

  // --- login expiry: bounded automatic retries ------------------------------------------
  // Kept in sessionStorage: an SSO re-authentication is a round trip through the provider that
  // comes back to this page, and the budget must survive it (3 a minute, then a visible state).
  var RETRY_STORE = "rw.terminals.retries";
  function mayRetry() {
    var now = Date.now();
    var retries = [];
    try { retries = JSON.parse(sessionStorage.getItem(RETRY_STORE) || "[]"); } catch (e) { retries = []; }
    retries = retries.filter(function (t) { return typeof t === "number" && now - t < 60000; });
    var allowed = retries.length < RETRIES_PER_MINUTE;
    if (allowed) retries.push(now);
    sessionStorage.setItem(RETRY_STORE, JSON.stringify(retries));
    return allowed;
  }
  function expired() {
    expiredEl.hidden = false;
    Object.keys(panes).forEach(function (id) { panes[id].status("Signed out", "error"); });
  }
  var checking = null;
  function checkLogin() {
    // Refresh the login, never the SSH session: an authenticated request tells whether the
    // login still holds (then reattach). An SSO login due for re-validation answers 401 with
    // the provider's silent re-authentication URL: go through it; it returns to this page,
    // which reattaches the same sessions from sessionStorage. Several panes share one check.
    if (!checking) {
      checking = fetch(meApi, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          return r.json().then(function (body) {
            if (r.ok) return body && body.signed_in ? "ok" : "gone";
            return body && body.reauth_url ? body.reauth_url : "gone";
          }, function () { return "gone"; });
        }, function () { return "offline"; })
        .then(function (result) { checking = null; return result; });
    }
    return checking;
  }

  // --- one pane -------------------------------------------------------------------------
  function Pane(id) {
    this.id = id;
    this.seq = 0; // the next byte this pane expects (all before it are rendered)
    this.acked = 0;
    this.ws = null;
    this.ended = false;
    this.backoff = 500;
    var el = this.el = document.createElement("div");
    el.className = "term-pane";
    el.setAttribute("data-pane", String(id));
    var head = document.createElement("div");
    head.className = "term-pane-head";
    var title = document.createElement("span");
    title.className = "term-pane-title";
    title.textContent = (known[id] && known[id].host_name) || "Session " + id;
    this.statusEl = document.createElement("span");
    this.statusEl.className = "term-pane-status";
    this.statusEl.setAttribute("data-pane-status", "");
    var max = button("⤢", "Maximize", function () { el.classList.toggle("is-max"); this.fit(); }.bind(this));
    var hide = button("–", "Take out of the grid (the session stays open)", function () { removePane(id); });
    var end = button("×", "End the session", function () {
      if (window.confirm("End this session? Its shell is closed.")) endSession(id);
    });
    head.append(title, this.statusEl, max, hide, end);
    this.body = document.createElement("div");
    this.body.className = "term-pane-body";
    el.append(head, this.body);
    el.addEventListener("mousedown", function () { setActive(this); }.bind(this));

    this.term = new window.Terminal({
      fontSize: state.font, scrollback: 10000, cursorBlink: true, allowProposedApi: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace'
    });
    this.fitter = new window.FitAddon.FitAddon();
    this.search = new window.SearchAddon.SearchAddon();
    this.term.loadAddon(this.fitter);
    this.term.loadAddon(this.search);
    this.term.onData(this.input.bind(this));
    this.term.onResize(this.sendSize.bind(this));
    this.term.textarea && this.term.textarea.addEventListener("focus", function () { setActive(this); }.bind(this));
    this.observer = new ResizeObserver(this.fit.bind(this));
  }
  Pane.prototype.mount = function (grid) {
    grid.appendChild(this.el);
    if (!this.opened) {
      this.term.open(this.body);
      this.opened = true;
      this.observer.observe(this.body);
      this.connect();
    }
    this.fit();
  };
  Pane.prototype.fit = function () {
    if (!this.opened || !this.body.offsetWidth || !this.body.offsetHeight) return;
    try { this.fitter.fit(); } catch (e) { /* not laid out yet */ }
  };
  Pane.prototype.status = function (text, kind) {
    this.statusEl.textContent = text;
    this.statusEl.setAttribute("data-kind", kind || "");
  };
  Pane.prototype.send = function (message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  };
  Pane.prototype.sendSize = function () {
    if (this.attached) this.send({ type: "resize", cols: this.term.cols, rows: this.term.rows });
  };
  Pane.prototype.input = function (data) {
    for (var i = 0; i < data.length; i += INPUT_CHUNK) {
      this.send({ type: "input", data: data.slice(i, i + INPUT_CHUNK) });
    }
  };
  Pane.prototype.connect = function () {
    var pane = this;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = this.ws = new WebSocket(scheme + location.host + "/ws/terminals/" + this.id + "/");
    ws.binaryType = "arraybuffer";
    this.attached = false;
    this.status("Connecting…");
    ws.onopen = function () { ws.send(JSON.stringify({ type: "attach", last_seq: pane.seq })); };
    ws.onmessage = function (event) {
      if (typeof event.data === "string") { pane.event(JSON.parse(event.data)); return; }
      pane.output(event.data);
    };
    ws.onclose = function (event) { if (pane.ws === ws) pane.closed(event.code); };
  };
  Pane.prototype.event = function (message) {
    if (message.type === "attached") {
      this.attached = true;
      this.backoff = 500;
      if (message.missed) this.term.write("\r\n\x1b[33m[" + message.missed + " bytes of earlier output are no longer kept]\x1b[0m\r\n");
      this.seq = Math.max(this.seq, message.seq);
      this.status("Attached", "ok");
      expiredEl.hidden = true;
      this.fit();
      this.sendSize();
      setState(this.id, "attached");
    } else if (message.type === "error") {
      this.term.write("\r\n\x1b[31m" + message.message + "\x1b[0m\r\n");
    } else if (message.type === "closed") {
      this.term.write("\r\n\x1b[33m[" + message.reason + "]\x1b[0m\r\n");
    }
  };
  Pane.prototype.output = function (buffer) {
    var view = new DataView(buffer);
    var start = Number(view.getBigUint64(0));
    var bytes = new Uint8Array(buffer, 8);
    if (start + bytes.length <= this.seq) return; // already rendered
    if (start < this.seq) bytes = bytes.subarray(this.seq - start);
    var end = start + (buffer.byteLength - 8);
    this.seq = end;
    var pane = this;
    this.term.write(bytes, function () {
      if (end - pane.acked >= ACK_EVERY || pane.ws.bufferedAmount === 0) {
        pane.acked = end;
        pane.send({ type: "ack", seq: end });
      }
    });
  };
  Pane.prototype.closed = function (code) {
    this.attached = false;
    var pane = this;
    if (ENDED[code]) {
      this.ended = true;
      this.status("Ended", "error");
      setState(this.id, "closed");
      return;
    }
    if (code === 4401) {
      this.status("Login expired", "error");
      if (!mayRetry()) { expired(); return; }
      checkLogin().then(function (result) {
        if (result === "ok") pane.connect();
        else if (result === "offline") setTimeout(function () { pane.closed(4401); }, 5000);
        else if (result === "gone") expired();
        else if (/^\/[^/]/.test(result)) window.location.assign(result); // same-origin path only
        else expired();
      });
      return;
    }
    if (REFUSED[code]) {
      this.ended = true;
      this.status("Refused", "error");
      this.term.write("\r\n\x1b[31m" + REFUSED[code] + "\x1b[0m\r\n");
      if (code === 4404) setState(this.id, "closed");
      return;
    }
    // a dropped network or a restarting server: reattach from what was rendered
    this.status("Reconnecting…");
    setTimeout(function () { if (panes[pane.id] === pane) pane.connect(); }, this.backoff);
    this.backoff = Math.min(this.backoff * 2, 10000);
  };
  Pane.prototype.dispose = function () {
    var ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    this.observer.disconnect();
    this.term.dispose();
    this.el.remove();
  };

  function button(text, label, handler) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.title = label;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", handler);
    return b;
  }

  function setActive(pane) {
    if (activePane && activePane.el) activePane.el.classList.remove("is-active");
    activePane = pane;
    if (pane) pane.el.classList.add("is-active");
  }

  // --- tabs and grids -------------------------------------------------------------------
  function grid(tabId) {
    if (!gridFor[tabId]) {
      var g = gridFor[tabId] = document.createElement("div");
      g.className = "term-grid";
      g.setAttribute("data-grid", String(tabId));
      grids.appendChild(g);
      splittersFor[tabId] = window.rwSplitters(g, { minimum: minimum, resized: function (sizes, done) {
        var t = tab(tabId);
        if (!t) return;
        keepSizes(t, sizes);
        fitTab(t); // each pane refits and sends its new size (Pane.fit → onResize → sendSize)
        if (done) save();
      } });
    }
    return gridFor[tabId];
  }
  // the smallest a pane may be dragged to: about 10 columns by 3 rows of text (with its title
  // bar), and never under 120 px wide
  function minimum(axis) {
    if (axis === "columns") return Math.max(120, Math.ceil(state.font * 0.6 * 10) + 16);
    return Math.max(80, Math.ceil(state.font * 1.2 * 3) + 32);
  }
  function keepSizes(t, sizes) {
    if (sizes.columns) t.colSizes = sizes.columns; else delete t.colSizes;
    if (sizes.rows) t.rowSizes = sizes.rows; else delete t.rowSizes;
  }
  function fitTab(t) {
    t.panes.forEach(function (id) { if (panes[id]) panes[id].fit(); });
  }
  function layout() {
    var current = activeTab();
    state.active = current.id;
    Object.keys(gridFor).forEach(function (id) {
      if (!tab(Number(id))) {
        splittersFor[id].dispose();
        gridFor[id].remove();
        delete gridFor[id];
        delete splittersFor[id];
      }
    });
    state.tabs.forEach(function (t) {
      var g = grid(t.id);
      g.hidden = t.id !== current.id;
      var n = t.panes.length;
      var cols = state.columns === "auto" ? Math.max(1, Math.ceil(Math.sqrt(n))) : Number(state.columns);
      cols = Math.max(1, Math.min(cols, Math.max(n, 1)));
      // sizes kept while the grid keeps its number of columns (rows); otherwise equal again
      var sizes = { columns: t.colSizes, rows: t.rowSizes };
      keepSizes(t, splittersFor[t.id].update(cols, Math.ceil(n / cols), sizes));
      t.panes.forEach(function (id) {
        var pane = panes[id] || (panes[id] = new Pane(id));
        if (pane.el.parentNode !== g || !pane.opened) pane.mount(g);
      });
    });
    emptyEl.hidden = current.panes.length > 0;
    renderTabs();
    renderList();
    save();
    requestAnimationFrame(function () { fitTab(current); });
  }
  function renderTabs() {
    tabsEl.textContent = "";
    state.tabs.forEach(function (t) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "term-tab";
      b.setAttribute("role", "tab");
      b.setAttribute("aria-selected", String(t.id === state.active));
      b.textContent = t.name + (t.panes.length ? " (" + t.panes.length + ")" : "");
      b.addEventListener("click", function () { state.active = t.id; layout(); });
      if (state.tabs.length > 1) {
        var x = document.createElement("span");
        x.className = "term-tab-close";
        x.textContent = "×";
        x.title = "Close the tab (its sessions stay open)";
        x.addEventListener("click", function (event) {
          event.stopPropagation();
          t.panes.slice().forEach(removePane);
          state.tabs = state.tabs.filter(function (o) { return o !== t; });
          layout();
        });
        b.appendChild(x);
      }
      tabsEl.appendChild(b);
    });
  }
  function tabOf(id) {
    return state.tabs.filter(function (t) { return t.panes.indexOf(id) !== -1; })[0];
  }
  function showSession(id) {
    var t = tabOf(id);
    if (!t) { t = activeTab(); t.panes.push(id); }
    state.active = t.id;
    layout();
    if (panes[id]) { setActive(panes[id]); panes[id].term.focus(); }
  }
  function removePane(id) {
    state.tabs.forEach(function (t) { t.panes = t.panes.filter(function (p) { return p !== id; }); });
    if (panes[id]) {
      if (activePane === panes[id]) setActive(null);
      panes[id].dispose();
      delete panes[id];
    }
    if (known[id] && known[id].state === "attached") known[id].state = "detached";
    layout();
  }

  // --- the sidebar ----------------------------------------------------------------------
  function setState(id, value) {
    if (!known[id]) known[id] = { id: id, host_name: "Session " + id, recording: null };
    known[id].state = value;
    renderList();
  }
  function renderList() {
    listEl.textContent = "";
    var ids = Object.keys(known).map(Number).filter(function (id) { return known[id].state !== "closed"; });
    ids.sort(function (a, b) { return b - a; });
    noSessionsEl.hidden = ids.length > 0;
    ids.forEach(function (id) {
      var s = known[id];
      var li = document.createElement("li");
      li.setAttribute("data-session", String(id));
      var label = document.createElement("span");
      label.className = "term-session-name";
      label.textContent = s.host_name + " #" + id;
      var sub = document.createElement("span");
      sub.className = "term-session-state";
      var here = !!panes[id];
      var words = [here ? "attached here" : s.state === "attached" ? "attached elsewhere" : s.state];
      if (s.recording) words.push("recording");
      sub.textContent = words.join(" · ");
      label.appendChild(sub);
      li.appendChild(label);
      if (!here) li.appendChild(button("Show", "Show in the current tab", function () { showSession(id); }));
      listEl.appendChild(li);
    });
  }
  function refreshList() {
    if (!expiredEl.hidden) return; // signed out: nothing to ask until the sign-in
    fetch(sessionsApi + "?page_size=100", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        var rows = data.results || data;
        var seen = {};
        rows.forEach(function (s) {
          seen[s.id] = true;
          var state = panes[s.id] && panes[s.id].attached ? "attached" : s.state;
          known[s.id] = { id: s.id, host_name: s.host_name, state: state, recording: s.recording };
        });
        Object.keys(known).forEach(function (id) { if (!seen[id] && !panes[id]) delete known[id]; });
        renderList();
      }, function () { /* offline: keep the list */ });
  }

  function api(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: body ? JSON.stringify(body) : undefined
    });
  }
  function openSession(hostId) {
    openError.hidden = true;
    var probe = activePane || null;
    var cols = probe ? probe.term.cols : 80;
    var rows = probe ? probe.term.rows : 24;
    return api("POST", sessionsApi, { host: Number(hostId), cols: cols, rows: rows }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) {
          var messages = [];
          Object.keys(body).forEach(function (k) { messages = messages.concat(body[k]); });
          openError.textContent = messages.join(" ") || "Could not open a session.";
          openError.hidden = false;
          return;
        }
        known[body.id] = { id: body.id, host_name: body.host_name, state: body.state, recording: body.recording };
        showSession(body.id);
      });
    });
  }
  function endSession(id) {
    api("DELETE", sessionsApi + id + "/").then(function () {
      setState(id, "closed");
      removePane(id);
    });
  }

  // --- toolbar --------------------------------------------------------------------------
  var form = root.querySelector("[data-open-form]");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var select = form.querySelector("select[name=open]");
    if (select) openSession(select.value);
  });
  root.querySelector("[data-new-tab]").addEventListener("click", function () {
    var id = state.next++;
    state.tabs.push({ id: id, name: "Tab " + id, panes: [] });
    state.active = id;
    layout();
  });
  var columns = root.querySelector("[data-columns]");
  columns.value = state.columns;
  columns.addEventListener("change", function () { state.columns = columns.value; layout(); });
  root.querySelectorAll("[data-font]").forEach(function (b) {
    b.addEventListener("click", function () {
      state.font = Math.max(8, Math.min(32, state.font + Number(b.getAttribute("data-font"))));
      Object.keys(panes).forEach(function (id) { panes[id].term.options.fontSize = state.font; panes[id].fit(); });
      layout(); // the splitters' minimum follows the font size
    });
  });
  function current() { return activePane || panes[activeTab().panes[0]]; }
  root.querySelector("[data-copy]").addEventListener("click", function () {
    var pane = current();
    if (pane && pane.term.hasSelection() && navigator.clipboard) navigator.clipboard.writeText(pane.term.getSelection());
  });
  root.querySelector("[data-paste]").addEventListener("click", function () {
    var pane = current();
    if (pane && navigator.clipboard && navigator.clipboard.readText) {
      navigator.clipboard.readText().then(function (text) { pane.term.paste(text); pane.term.focus(); }, function () {});
    }
  });
  var search = root.querySelector("[data-search]");
  function find(forward) {
    var pane = current();
    if (!pane || !search.value) return;
    if (forward) pane.search.findNext(search.value); else pane.search.findPrevious(search.value);
  }
  search.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); find(!event.shiftKey); }
  });
  root.querySelector("[data-search-next]").addEventListener("click", function () { find(true); });
  root.querySelector("[data-search-prev]").addEventListener("click", function () { find(false); });
  window.addEventListener("resize", function () { fitTab(activeTab()); });

  // sessions of this layout that are gone (ended elsewhere) drop out; the rest reattach
  state.tabs.forEach(function (t) {
    t.panes = t.panes.filter(function (id) { return known[id] && known[id].state !== "closed"; });
  });
  layout();
  var wanted = new URLSearchParams(location.search).get("open");
  if (wanted && /^[0-9]+$/.test(wanted)) {
    history.replaceState(null, "", location.pathname);
    openSession(wanted);
  }
  setInterval(refreshList, 10000);
  root.setAttribute("data-ready", ""); // for tests and scripts: the handlers are in place
})();
