/* global document, window, uPlot */
// The charts of a stratum loadtest or chaos HTML report (tools/loadtest/html-report.ts inlines this file):
// reads the page's data from #report-data and draws one uPlot chart into each [data-chart] container.
(function () {
  'use strict';
  const page = JSON.parse(document.getElementById('report-data').textContent);
  const s = page.series;
  const HEIGHT = 260;
  const WINDOW_FILLS = ['rgba(220, 53, 69, 0.16)', 'rgba(255, 159, 28, 0.18)', 'rgba(111, 66, 193, 0.14)'];
  const WINDOW_TEXT = ['#b02a37', '#b35c00', '#59359a'];

  // Greens for 2xx, blues for 3xx, oranges for 4xx, reds for 5xx, greys and purples for client codes.
  const SHADES = {
    2: ['#2f9e44', '#66a80f', '#0ca678', '#5c940d'],
    3: ['#1c7ed6', '#4263eb', '#1098ad'],
    4: ['#f08c00', '#e8590c', '#d9480f', '#fab005'],
    5: ['#e03131', '#c2255c', '#a61e4d', '#f03e3e'],
    x: ['#7048e8', '#495057', '#ae3ec9', '#868e96', '#3b5bdb'],
  };
  const used = {};
  function statusColor(key) {
    const group = /^[2-5]\d\d$/.test(key) ? key[0] : 'x';
    const n = used[group] || 0;
    used[group] = n + 1;
    const shades = SHADES[group];
    return shades[n % shades.length];
  }
  const KIND_COLORS = ['#1c7ed6', '#e8590c', '#2f9e44', '#ae3ec9', '#f08c00', '#0ca678', '#e03131', '#495057'];

  /** Shades the fault windows behind the series, with their labels along the top. */
  function shadeWindows(u) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    page.windows.forEach(function (w, i) {
      const x0 = Math.max(left, u.valToPos(w.fromS, 'x', true));
      const x1 = Math.min(left + width, u.valToPos(w.toS, 'x', true));
      if (!(x1 >= x0)) return;
      ctx.fillStyle = WINDOW_FILLS[i % WINDOW_FILLS.length];
      ctx.fillRect(x0, top, Math.max(x1 - x0, 2 * window.devicePixelRatio), height);
      ctx.fillStyle = WINDOW_TEXT[i % WINDOW_TEXT.length];
      ctx.font = `${Math.round(11 * window.devicePixelRatio)}px system-ui, sans-serif`;
      ctx.textBaseline = 'top';
      // One row per window, so the labels of windows that start close together do not overlap.
      ctx.fillText(w.label, x0 + 4 * window.devicePixelRatio, top + (4 + 14 * i) * window.devicePixelRatio);
    });
    ctx.restore();
  }

  const seconds = (u, values) => values.map((v) => `${v} s`);
  const msValue = (u, v) => (v == null ? '-' : `${v.toFixed(1)} ms`);
  const countValue = (u, v) => (v == null ? '-' : String(v));

  function line(label, color, value, extra) {
    return Object.assign({ label, stroke: color, width: 2, value, spanGaps: false, points: { size: 4 } }, extra);
  }

  function options(el, series, yLabel) {
    return {
      width: Math.max(320, el.clientWidth),
      height: HEIGHT,
      scales: { x: { time: false } },
      series: [{ label: 'second', value: (u, v) => (v == null ? '-' : `${v} s`) }].concat(series),
      axes: [
        { values: seconds, label: 'seconds from the start' },
        { label: yLabel, size: 60 },
      ],
      legend: { live: true },
      hooks: { drawClear: [shadeWindows] },
    };
  }

  const builders = {
    throughput(el) {
      const counters = Object.keys(s.counters);
      const extra = ['#7048e8', '#1098ad', '#ae3ec9'];
      return [
        options(
          el,
          [
            line(page.labels.answered, '#1c7ed6', countValue),
            line(page.labels.sent, '#adb5bd', countValue, { dash: [6, 4] }),
            line(page.labels.errors, '#e03131', countValue),
          ].concat(counters.map((name, i) => line(name, extra[i % extra.length], countValue))),
          'per second',
        ),
        [s.t, s.answered, s.sent, s.errors].concat(counters.map((name) => s.counters[name])),
      ];
    },
    latency(el) {
      return [
        options(
          el,
          [line('p50', '#2f9e44', msValue), line('p90', '#f08c00', msValue), line('p99', '#e03131', msValue)],
          'ms',
        ),
        [s.t, s.p50, s.p90, s.p99],
      ];
    },
    statuses(el) {
      const keys = Object.keys(s.statuses);
      return [
        options(
          el,
          keys.map((k) => line(k, statusColor(k), countValue)),
          'per second',
        ),
        [s.t].concat(keys.map((k) => s.statuses[k])),
      ];
    },
    kinds(el) {
      const kinds = Object.keys(s.kindsP99);
      return [
        options(
          el,
          kinds.map((k, i) => line(k, KIND_COLORS[i % KIND_COLORS.length], msValue)),
          'p99 ms',
        ),
        [s.t].concat(kinds.map((k) => s.kindsP99[k])),
      ];
    },
  };

  const charts = [];
  document.querySelectorAll('[data-chart]').forEach(function (el) {
    const build = builders[el.getAttribute('data-chart')];
    if (!build) return;
    const [opts, data] = build(el);
    charts.push({ el, plot: new uPlot(opts, data, el) });
  });
  let resizing;
  window.addEventListener('resize', function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      charts.forEach((c) => c.plot.setSize({ width: Math.max(320, c.el.clientWidth), height: HEIGHT }));
    }, 100);
  });
})();
