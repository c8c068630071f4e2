/* A small asciinema v2 player on xterm.js: fetches the .cast, then replays its "o" (output)
 * and "r" (resize) events on their timeline; "i" (keystrokes, when recorded) are skipped. */
(function () {
  "use strict";

  var root = document.querySelector("[data-player]");
  if (!root || !window.Terminal) return;
  var screen = root.querySelector("[data-screen]");
  var playButton = root.querySelector("[data-play]");
  var speedSelect = root.querySelector("[data-speed]");
  var clock = root.querySelector("[data-clock]");
  var term = null;
  var events = [];
  var header = null;
  var timer = null;
  var index = 0;
  var startedAt = 0;
  var offset = 0; // seconds already played when (re)started

  function fresh() {
    if (term) term.dispose();
    term = new window.Terminal({
      cols: (header && header.width) || 80,
      rows: (header && header.height) || 24,
      scrollback: 10000,
      disableStdin: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace'
    });
    term.open(screen);
  }
  function show(seconds) {
    var s = Math.floor(seconds);
    clock.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }
  function apply(event) {
    if (event[1] === "o") term.write(event[2]);
    else if (event[1] === "r") {
      var size = String(event[2]).split("x");
      term.resize(Number(size[0]) || 80, Number(size[1]) || 24);
    }
  }
  function tick() {
    var speed = Number(speedSelect.value) || 1;
    var now = offset + (performance.now() - startedAt) / 1000 * speed;
    while (index < events.length && events[index][0] <= now) apply(events[index++]);
    show(Math.min(now, events.length ? events[events.length - 1][0] : 0));
    if (index >= events.length) { stop(); playButton.textContent = "Replay"; root.setAttribute("data-finished", ""); return; }
    timer = setTimeout(tick, 16);
  }
  function stop() {
    if (timer) clearTimeout(timer);
    timer = null;
  }
  function play() {
    if (timer) { // pause
      offset += (performance.now() - startedAt) / 1000 * (Number(speedSelect.value) || 1);
      stop();
      playButton.textContent = "Play";
      return;
    }
    if (index >= events.length) { index = 0; offset = 0; fresh(); root.removeAttribute("data-finished"); }
    startedAt = performance.now();
    playButton.textContent = "Pause";
    tick();
  }
  speedSelect.addEventListener("change", function () {
    if (timer) { play(); play(); } // re-anchor the timeline at the new speed
  });
  playButton.disabled = true;
  fetch(root.getAttribute("data-src"), { credentials: "same-origin" })
    .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
    .then(function (text) {
      var lines = text.split("\n").filter(Boolean);
      header = JSON.parse(lines[0]);
      events = lines.slice(1).map(function (line) { return JSON.parse(line); });
      fresh();
      playButton.disabled = false;
      playButton.addEventListener("click", play);
      root.setAttribute("data-ready", "");
    })
    .catch(function (error) {
      screen.textContent = "Could not load the recording (" + error.message + ").";
    });
})();
