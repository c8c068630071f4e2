// Time series charts with uPlot (static/vendor, from npm). An element opts in with
// data-chart-source (the id of a <script type="application/json"> holding {points: [{t, ...}]},
// the shape of /api/v1/miners/<id>/samples/) and data-chart-fields (one or two series; the
// second gets the right-hand axis). Colours come from the theme's CSS variables.
// A card with data-chart-api fetches another range from that API when a [data-chart-range]
// link (seconds) is clicked; without JavaScript the link reloads the page with that range.
(function () {
  "use strict";

  // minIncr: the finest step between two value-axis ticks (finer is noise, not a reading)
  var FIELDS = {
    hashrate_ths: { label: "Hashrate", unit: "TH/s", colour: "--accent", digits: 1, minIncr: 0.1 },
    power_w: { label: "Power", unit: "W", colour: "--info", digits: 0, minIncr: 1 },
    max_temp_c: { label: "Max temp", unit: "°C", colour: "--danger", digits: 0, minIncr: 0.1 }
  };
  var charts = [];

  // --- Value axes -------------------------------------------------------------------------------
  // uPlot picks the tick step from `incrs` to fit the axis; the labels must show as many
  // decimals as that step needs, or a small range (hashrate 203.8–205.2 in steps of 0.2,
  // temperatures 65.8–66.4) prints the same label twice ("204, 204, 205"). Steps are 1-2-5
  // (no 2.5, whose labels need a digit more) from the field's finest step up; large values
  // are written in k / M so that "3,500,000" fits the axis too.
  function increments(finest) {
    var steps = [];
    for (var exp = -3; exp <= 12; exp++) {
      [1, 2, 5].forEach(function (m) {
        var step = Number(m + "e" + exp);
        if (step >= finest * (1 - 1e-9)) steps.push(step);
      });
    }
    return steps;
  }

  function decimalsOf(step) {
    for (var digits = 0; digits < 6; digits++) {
      var scaled = step * Math.pow(10, digits);
      if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return digits;
    }
    return 6;
  }

  function tickLabels(ticks, step) {
    var top = ticks.reduce(function (most, v) { return v == null ? most : Math.max(most, Math.abs(v)); }, 0);
    var divisor = top >= 1e6 ? 1e6 : top >= 1e4 ? 1e3 : 1;
    var suffix = divisor === 1e6 ? "M" : divisor === 1e3 ? "k" : "";
    var digits = step > 0 ? decimalsOf(step / divisor) : 0;
    return ticks.map(function (v) {
      if (v == null) return "";
      var n = Math.abs(v) < 1e-9 * Math.max(1, step) ? 0 : v / divisor;  // no "-0.0"
      var text = n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
      return n === 0 ? text : text + suffix;
    });
  }

  function themeColour(variable) {
    var probe = document.createElement("span");
    probe.style.color = "var(" + variable + ")";
    document.body.append(probe);
    var colour = window.getComputedStyle(probe).color;
    probe.remove();
    return colour;
  }

  function number(value, digits) {
    return value == null ? "—" : value.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  function build(el) {
    var source = document.getElementById(el.getAttribute("data-chart-source"));
    if (!source || !window.uPlot) return;
    var points = JSON.parse(source.textContent).points || [];
    var fields = el.getAttribute("data-chart-fields").split(" ");
    var data = [points.map(function (p) { return Date.parse(p.t) / 1000; })];
    var muted = themeColour("--muted");
    var grid = themeColour("--border");
    var short = el.classList.contains("chart-short");
    var series = [{}];
    var axes = [{ stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } }];
    fields.forEach(function (name, i) {
      var field = FIELDS[name];
      data.push(points.map(function (p) { return p[name]; }));
      series.push({
        label: field.label + " (" + field.unit + ")",
        stroke: themeColour(field.colour),
        width: 2,
        scale: name,
        spanGaps: false,
        value: function (u, v) { return number(v, field.digits); }
      });
      axes.push({
        scale: name,
        side: i === 0 ? 3 : 1,
        stroke: muted,
        size: 60,
        grid: { show: i === 0, stroke: grid, width: 1 },
        ticks: { stroke: grid },
        space: short ? 22 : 30,  // px between ticks: a short chart still gets two or more
        incrs: increments(field.minIncr),
        values: function (u, ticks, axisIdx, space, step) { return tickLabels(ticks, step); }
      });
    });
    var height = short ? 160 : 240;
    var plot = new window.uPlot({
      width: Math.max(200, el.clientWidth),
      height: height,
      series: series,
      axes: axes,
      scales: { x: { time: true } },
      cursor: { drag: { x: false, y: false } }
    }, data, el);
    var entry = { el: el, plot: plot, height: height };
    if (window.ResizeObserver) {
      entry.observer = new ResizeObserver(function () {
        plot.setSize({ width: Math.max(200, el.clientWidth), height: height });
      });
      entry.observer.observe(el);
    }
    charts.push(entry);
  }

  function drop(entry) {
    if (entry.observer) entry.observer.disconnect();
    entry.plot.destroy();
  }

  function draw(root) {
    charts = charts.filter(function (entry) {
      if (document.contains(entry.el)) return true;
      drop(entry);
      return false;
    });
    root.querySelectorAll("[data-chart-source]").forEach(function (el) {
      if (el.hidden) return;
      if (!charts.some(function (entry) { return entry.el === el; })) build(el);
    });
  }

  function redraw(card, body) {
    var source = card.querySelector("script[type='application/json']");
    source.textContent = JSON.stringify(body);
    var empty = !(body.points && body.points.length);
    card.querySelectorAll("[data-chart-source]").forEach(function (el) { el.hidden = empty; });
    var note = card.querySelector("[data-chart-empty]");
    if (note) note.hidden = !empty;
    charts = charts.filter(function (entry) {
      if (!card.contains(entry.el)) return true;
      drop(entry);
      return false;
    });
    draw(card);
  }

  document.addEventListener("click", function (event) {
    var link = event.target instanceof Element ? event.target.closest("[data-chart-range]") : null;
    var card = link && link.closest("[data-chart-api]");
    if (!card || !window.fetch) return;
    event.preventDefault();
    var from = new Date(Date.now() - Number(link.getAttribute("data-chart-range")) * 1000);
    var url = card.getAttribute("data-chart-api") + "?from=" + encodeURIComponent(from.toISOString());
    card.setAttribute("aria-busy", "true");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) {
        card.querySelectorAll("[data-chart-range]").forEach(function (other) {
          if (other === link) other.setAttribute("aria-current", "true");
          else other.removeAttribute("aria-current");
        });
        redraw(card, body);
      })
      .catch(function () { window.location.assign(link.href); })  // the page can draw it too
      .finally(function () { card.removeAttribute("aria-busy"); });
  });

  // for tests and the console: the drawn charts and the axis labelling
  window.rwCharts = {
    plots: function () { return charts.map(function (entry) { return entry.plot; }); },
    increments: increments,
    tickLabels: tickLabels
  };

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:load", function (event) {
    if (event.target instanceof Element) draw(event.target);
  });
  // The theme toggle changes the colours: draw again.
  new MutationObserver(function () {
    charts.forEach(drop);
    charts = [];
    draw(document);
  }).observe(document.documentElement, { attributes: true, attributeFilter: ["data-resolved-theme"] });
})();
