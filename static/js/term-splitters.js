/* Splitters for the terminal workspace (terminals.js): drag handles between the columns and
 * between the rows of one tab's grid of panes.
 *
 * The sizes are fractions of the grid (each axis sums to 1, or null for equal tracks), applied
 * as `fr` tracks. A handle moves the boundary between its two neighbouring tracks only (their sum
 * stays), never below options.minimum(axis) pixels. Pointer Events (mouse, pen, touch) with
 * pointer capture; live during a drag, at most once a frame; the keyboard moves a focused handle
 * (arrows by 16 px, Shift 4×, Home/End to the limits); a double-click gives equal tracks.
 * options.resized(sizes, done) hears every change (done: the drag or the key press is over).
 * loaded before terminals.js: window.rwSplitters(grid, options) → {update, dispose}.
 */
(function () {
  "use strict";

  var STEP = 16; // pixels per arrow key (Shift: 4×)
  var HIT = 10; // pixels of a handle's hit area, centred on the gap between two panes
  var AXES = {
    columns: { track: "gridTemplateColumns", gap: "columnGap", extent: "clientWidth", coord: "clientX",
      orientation: "vertical", less: "ArrowLeft", more: "ArrowRight", noun: "columns" },
    rows: { track: "gridTemplateRows", gap: "rowGap", extent: "clientHeight", coord: "clientY",
      orientation: "horizontal", less: "ArrowUp", more: "ArrowDown", noun: "rows" }
  };

  // fractions for n tracks, or null: n numbers > 0 summing to 1 (a stored layout may be anything)
  function valid(sizes, n) {
    if (!Array.isArray(sizes) || n < 2 || sizes.length !== n) return null;
    var sum = 0;
    for (var i = 0; i < n; i++) {
      if (typeof sizes[i] !== "number" || !isFinite(sizes[i]) || sizes[i] <= 0) return null;
      sum += sizes[i];
    }
    return sizes.map(function (f) { return f / sum; });
  }
  function equal(n) {
    var sizes = [];
    for (var i = 0; i < n; i++) sizes.push(1 / n);
    return sizes;
  }
  // what is drawn: the stored fractions, with any track below the minimum raised to it (taken
  // from the larger tracks) when the grid has room, so a narrower window never collapses a pane
  function shown(sizes, space, min) {
    var out = sizes.slice();
    var floor = min / space;
    if (!(space > 0) || floor * out.length > 1) return out;
    for (var round = 0; round < out.length; round++) {
      var deficit = 0;
      var spare = 0;
      out.forEach(function (f) { if (f < floor) deficit += floor - f; else spare += f - floor; });
      if (deficit <= 1e-9 || spare <= 0) break;
      out = out.map(function (f) { return f < floor ? floor : f - (f - floor) * deficit / spare; });
    }
    return out;
  }
  function template(sizes, n) {
    if (!n) return "";
    if (!sizes) return "repeat(" + n + ", minmax(0, 1fr))";
    return sizes.map(function (f) { return "minmax(0, " + (f * n).toFixed(5) + "fr)"; }).join(" ");
  }

  function Splitters(grid, options) {
    this.grid = grid;
    this.options = options;
    this.counts = { columns: 0, rows: 0 };
    this.sizes = { columns: null, rows: null };
    this.handles = { columns: [], rows: [] };
    this.drag = null;
    this.frame = 0;
    this.layer = document.createElement("div");
    this.layer.className = "term-splitters";
    // first in the grid: the handles come before the panes in the tab order
    grid.insertBefore(this.layer, grid.firstChild);
    this.observer = new ResizeObserver(this.apply.bind(this));
    this.observer.observe(grid);
  }
  // the grid's shape: returns the sizes kept ({columns, rows}, each fractions or null)
  Splitters.prototype.update = function (columns, rows, sizes) {
    var counts = { columns: columns, rows: rows };
    var self = this;
    Object.keys(AXES).forEach(function (axis) {
      self.sizes[axis] = valid(sizes && sizes[axis], counts[axis]);
      if (self.counts[axis] !== counts[axis]) {
        self.counts[axis] = counts[axis];
        self.build(axis);
      }
    });
    this.apply();
    return { columns: this.sizes.columns, rows: this.sizes.rows };
  };
  Splitters.prototype.space = function (axis) {
    var n = this.counts[axis];
    var gap = parseFloat(getComputedStyle(this.grid)[AXES[axis].gap]) || 0;
    return { gap: gap, px: this.grid[AXES[axis].extent] - gap * Math.max(0, n - 1) };
  };
  // the fractions as drawn (equal ones when none are kept)
  Splitters.prototype.current = function (axis) {
    return shown(this.sizes[axis] || equal(this.counts[axis]), this.space(axis).px, this.options.minimum(axis));
  };
  Splitters.prototype.apply = function () {
    var self = this;
    Object.keys(AXES).forEach(function (axis) {
      self.grid.style[AXES[axis].track] = template(self.sizes[axis] && self.current(axis), self.counts[axis]);
    });
    this.place();
  };
  Splitters.prototype.build = function (axis) {
    if (this.drag && this.drag.axis === axis) this.drag = null; // its handle goes: the drag ends here
    this.handles[axis].forEach(function (h) { h.remove(); });
    this.handles[axis] = [];
    for (var i = 0; i < this.counts[axis] - 1; i++) this.handles[axis].push(this.handle(axis, i));
  };
  Splitters.prototype.handle = function (axis, index) {
    var self = this;
    var spec = AXES[axis];
    var h = document.createElement("div");
    h.className = "term-split term-split-" + axis;
    h.tabIndex = 0;
    h.setAttribute("role", "separator");
    h.setAttribute("aria-orientation", spec.orientation);
    h.setAttribute("aria-valuemin", "0");
    h.setAttribute("aria-valuemax", "100");
    h.setAttribute("aria-label", "Resize " + spec.noun + " " + (index + 1) + " and " + (index + 2));
    h.title = "Drag to resize (arrow keys too); double-click for equal sizes";
    h.addEventListener("pointerdown", function (event) {
      if (!event.isPrimary || event.button !== 0) return;
      event.preventDefault(); // no text selection, no scrolling
      h.focus();
      h.setPointerCapture(event.pointerId);
      self.drag = { axis: axis, index: index, pointer: event.pointerId, start: event[spec.coord],
        at: event[spec.coord], from: self.current(axis) };
      h.classList.add("is-dragging");
    });
    h.addEventListener("pointermove", function (event) {
      var drag = self.drag;
      if (!drag || drag.pointer !== event.pointerId) return;
      drag.at = event[spec.coord];
      if (!self.frame) {
        self.frame = requestAnimationFrame(function () { self.frame = 0; self.dragged(false); });
      }
    });
    function end(event) {
      if (!self.drag || self.drag.pointer !== event.pointerId) return;
      if (self.frame) { cancelAnimationFrame(self.frame); self.frame = 0; }
      if (event.type !== "pointercancel" && event.type !== "lostpointercapture") self.drag.at = event[spec.coord];
      self.dragged(true);
      self.drag = null;
      h.classList.remove("is-dragging");
    }
    h.addEventListener("pointerup", end);
    h.addEventListener("pointercancel", end);
    h.addEventListener("lostpointercapture", end);
    h.addEventListener("dblclick", function () {
      self.sizes[axis] = null;
      self.changed(true);
    });
    h.addEventListener("keydown", function (event) {
      var step = event.shiftKey ? STEP * 4 : STEP;
      var by = { Home: -Infinity, End: Infinity };
      by[spec.less] = -step;
      by[spec.more] = step;
      if (!(event.key in by) || event.altKey || event.ctrlKey || event.metaKey) return;
      event.preventDefault();
      self.move(axis, index, self.current(axis), by[event.key]);
      self.changed(true);
    });
    this.layer.appendChild(h);
    return h;
  };
  // the boundary after track `index` moved by `delta` pixels from the sizes `from`
  Splitters.prototype.move = function (axis, index, from, delta) {
    var px = this.space(axis).px;
    if (!(px > 0)) return;
    var min = this.options.minimum(axis);
    var pair = (from[index] + from[index + 1]) * px;
    if (pair < 2 * min) return; // no room to move: leave it
    var first = Math.max(min, Math.min(pair - min, from[index] * px + delta));
    var sizes = from.slice();
    sizes[index] = first / px;
    sizes[index + 1] = (pair - first) / px;
    this.sizes[axis] = sizes;
  };
  Splitters.prototype.dragged = function (done) {
    var drag = this.drag;
    if (!drag) return;
    this.move(drag.axis, drag.index, drag.from, drag.at - drag.start);
    this.changed(done);
  };
  Splitters.prototype.changed = function (done) {
    this.apply();
    this.options.resized({ columns: this.sizes.columns, rows: this.sizes.rows }, done);
  };
  // each handle over its gap, and its aria-valuenow (the boundary, in % of the grid)
  Splitters.prototype.place = function () {
    var self = this;
    Object.keys(AXES).forEach(function (axis) {
      var handles = self.handles[axis];
      if (!handles.length) return;
      var space = self.space(axis);
      if (!(space.px > 0)) return; // hidden (another tab): placed when it shows
      var sizes = self.current(axis);
      var offset = 0;
      var total = 0;
      handles.forEach(function (h, i) {
        offset += sizes[i] * space.px;
        total += sizes[i];
        var at = offset + space.gap * i + space.gap / 2 - HIT / 2;
        if (axis === "columns") h.style.left = at + "px"; else h.style.top = at + "px";
        h.setAttribute("aria-valuenow", String(Math.round(total * 100)));
      });
    });
  };
  Splitters.prototype.dispose = function () {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.observer.disconnect();
    this.layer.remove();
  };

  window.rwSplitters = function (grid, options) { return new Splitters(grid, options); };
})();
