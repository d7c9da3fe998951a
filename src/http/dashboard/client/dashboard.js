// The dashboard's script: polls /dashboard/api/samples once a second, keeps the last 15 minutes and draws them
// with uPlot (served by the service, no network beyond it). Read-only: it only ever sends GET.
/* global uPlot, document, window, fetch, URLSearchParams, Node */
(function () {
  'use strict';
  const KEEP = 900;
  const token = new URLSearchParams(window.location.search).get('token');
  const headers = token ? { authorization: 'Bearer ' + token } : {};
  const samples = [];
  let status = null;
  let after = 0;
  const charts = {};
  const COLORS = ['#2f6fde', '#d9480f', '#2b8a3e', '#9c36b5', '#e67700', '#0b7285', '#c2255c', '#5c940d'];

  const el = (tag, attrs, children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const child of children === undefined ? [] : [].concat(children))
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  };
  const table = (head, rows) =>
    el('table', {}, [
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          head.map((h) => el('th', {}, h)),
        ),
      ),
      el(
        'tbody',
        {},
        rows.map((r) =>
          el(
            'tr',
            {},
            r.map((c) => el('td', {}, c === null || c === undefined ? '—' : c)),
          ),
        ),
      ),
    ]);
  const note = (text) => el('p', { class: 'not-configured' }, text);
  const fill = (id, ...nodes) => {
    const target = document.querySelector('[data-value="' + id + '"]');
    target.replaceChildren(...nodes);
  };
  const fmt = (n, digits) =>
    n === null || n === undefined ? '—' : Number(n).toFixed(digits === undefined ? 1 : digits);
  const pct = (n) => (n === null ? '—' : (n * 100).toFixed(1) + ' %');
  const sum = (values) => values.reduce((a, b) => a + b, 0);
  const recent = (n) => samples.slice(-n);

  /** Draws (or redraws, when its series changed) one chart: series = [{ label, values }] over `xs`. */
  function draw(id, xs, series, yLabel) {
    const box = document.querySelector('[data-chart="' + id + '"]');
    if (!box) return;
    const key = series.map((s) => s.label).join('|');
    const data = [xs, ...series.map((s) => s.values)];
    const width = Math.max(200, box.clientWidth || 400);
    let chart = charts[id];
    if (!chart || chart.key !== key) {
      if (chart) chart.plot.destroy();
      box.replaceChildren();
      const plot = new uPlot(
        {
          width,
          height: 160,
          legend: { show: true },
          scales: { x: { time: true } },
          axes: [{}, { label: yLabel, size: 50 }],
          series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5 }))],
        },
        data,
        box,
      );
      chart = charts[id] = { plot, key };
    } else {
      chart.plot.setData(data);
      if (Math.abs(chart.plot.width - width) > 20) chart.plot.setSize({ width, height: 160 });
    }
  }

  /** The keys seen in the kept samples, busiest first, at most `n`. */
  function topKeys(pick, n) {
    const totals = new Map();
    for (const s of samples)
      for (const [k, v] of Object.entries(pick(s))) totals.set(k, (totals.get(k) || 0) + (Array.isArray(v) ? v[0] : v));
    return [...totals.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k]) => k);
  }

  function render() {
    const xs = samples.map((s) => s.t / 1000);
    // Requests and latency.
    const routes = topKeys((s) => s.routes, 7).filter((k) => k !== '*');
    draw(
      'rps',
      xs,
      [
        { label: 'all', values: samples.map((s) => (s.routes['*'] ? s.routes['*'][0] : 0)) },
        ...routes
          .slice(0, 6)
          .map((r) => ({ label: r, values: samples.map((s) => (s.routes[r] ? s.routes[r][0] : 0)) })),
      ],
      'req/s',
    );
    draw(
      'latency',
      xs,
      [
        { label: 'p50', values: samples.map((s) => (s.routes['*'] && s.routes['*'][0] ? s.routes['*'][1] : null)) },
        { label: 'p99', values: samples.map((s) => (s.routes['*'] && s.routes['*'][0] ? s.routes['*'][2] : null)) },
      ],
      'ms',
    );
    const last10 = recent(10);
    const all10 = last10.map((s) => s.routes['*'] || [0, 0, 0]);
    const totalRps = sum(all10.map((r) => r[0])) / Math.max(1, last10.length);
    fill('requests', el('p', { class: 'big', 'data-metric': 'rps' }, fmt(totalRps) + ' req/s'));
    const lastBusy = [...samples].reverse().find((s) => s.routes['*'] && s.routes['*'][0] > 0);
    fill(
      'latency',
      lastBusy
        ? el(
            'p',
            { class: 'big', 'data-metric': 'latency' },
            'p50 ' + fmt(lastBusy.routes['*'][1], 2) + ' ms · p99 ' + fmt(lastBusy.routes['*'][2], 2) + ' ms',
          )
        : el('p', { class: 'big', 'data-metric': 'latency' }, 'no requests yet'),
    );
    const routeRows = topKeys((s) => s.routes, 30)
      .filter((k) => k !== '*')
      .map((r) => {
        const seconds = last10.map((s) => s.routes[r]).filter(Boolean);
        const count = sum(seconds.map((v) => v[0]));
        return [
          r,
          fmt(count / Math.max(1, last10.length)),
          count ? fmt(Math.max(...seconds.map((v) => v[1])), 2) : '—',
          count ? fmt(Math.max(...seconds.map((v) => v[2])), 2) : '—',
        ];
      });
    fill(
      'routes',
      routeRows.length
        ? table(['route', 'req/s', 'p50 ms (worst second)', 'p99 ms (worst second)'], routeRows)
        : el('p', {}, 'no requests in the last 15 minutes'),
    );

    // Errors.
    const codes = topKeys((s) => s.errors, 6);
    draw(
      'errors',
      xs,
      codes.length
        ? codes.map((c) => ({ label: c, values: samples.map((s) => s.errors[c] || 0) }))
        : [{ label: 'errors', values: samples.map(() => 0) }],
      'per s',
    );
    const errorTotals = topKeys((s) => s.errors, 50).map((c) => [c, sum(samples.map((s) => s.errors[c] || 0))]);
    fill(
      'errors',
      errorTotals.length
        ? table(['code', 'answers in the last 15 min'], errorTotals)
        : el('p', {}, 'no error answers in the last 15 minutes'),
    );

    // Pools.
    const lastSample = samples[samples.length - 1];
    const poolNames = lastSample ? Object.keys(lastSample.pools).sort() : [];
    draw(
      'pools',
      xs,
      poolNames
        .slice(0, 8)
        .map((p) => ({ label: p + ' in use', values: samples.map((s) => (s.pools[p] ? s.pools[p][0] : null)) })),
      'conns',
    );
    fill(
      'pools',
      poolNames.length
        ? table(
            ['pool', 'in use', 'free', 'waiting', 'max', 'refused (15 min)'],
            poolNames.map((p) => {
              const v = lastSample.pools[p];
              return [p, v[0], v[1], v[2], v[4], sum(samples.map((s) => (s.pools[p] ? s.pools[p][3] : 0)))];
            }),
          )
        : note('no pools are watched'),
    );

    // Transactions.
    draw(
      'tx',
      xs,
      [
        { label: 'commits', values: samples.map((s) => s.tx.commits) },
        { label: 'retries', values: samples.map((s) => sum(Object.values(s.tx.retries))) },
        { label: 'deadlines exceeded', values: samples.map((s) => s.tx.deadlines) },
      ],
      'per s',
    );
    const reasons = topKeys((s) => s.tx.retries, 20);
    fill(
      'transactions',
      el('p', { class: 'big' }, fmt(sum(last10.map((s) => s.tx.commits)) / Math.max(1, last10.length)) + ' commits/s'),
      table(
        ['in the last 15 min', 'count'],
        [
          ['commits', sum(samples.map((s) => s.tx.commits))],
          ['deadlines exceeded', sum(samples.map((s) => s.tx.deadlines))],
          ...reasons.map((r) => ['retries: ' + r, sum(samples.map((s) => s.tx.retries[r] || 0))]),
        ],
      ),
    );

    // Cache.
    const caches = topKeys(
      (s) => Object.fromEntries(Object.entries(s.cache).map(([k, c]) => [k, c.hitLocal + c.hitShared + c.miss])),
      8,
    );
    const ratio = (c) => {
      const n = c.hitLocal + c.hitShared + c.miss;
      return n ? (c.hitLocal + c.hitShared) / n : null;
    };
    draw(
      'cache',
      xs,
      caches.length
        ? caches.map((c) => ({
            label: c + ' hit ratio',
            values: samples.map((s) => (s.cache[c] ? ratio(s.cache[c]) : null)),
          }))
        : [{ label: 'hit ratio', values: samples.map(() => null) }],
      'ratio',
    );
    const cacheRows = caches.map((c) => {
      const t = { hitLocal: 0, hitShared: 0, miss: 0, loads: 0, invalidations: 0 };
      for (const s of samples) if (s.cache[c]) for (const k of Object.keys(t)) t[k] += s.cache[c][k];
      const n = t.hitLocal + t.hitShared + t.miss;
      return [
        c,
        n,
        pct(n ? t.hitLocal / n : null),
        status && !status.cache.redis ? 'not configured' : pct(n ? t.hitShared / n : null),
        Math.max(0, t.miss - t.loads),
        t.invalidations,
      ];
    });
    fill(
      'cache',
      ...(status && !status.cache.redis
        ? [note('Redis tier not configured (REDIS_URL unset): in-process tier only')]
        : []),
      cacheRows.length
        ? table(
            ['cache (15 min)', 'lookups', 'in-process hits', 'Redis hits', 'single-flight joins', 'invalidations'],
            cacheRows,
          )
        : el('p', {}, 'no cache lookups in the last 15 minutes'),
    );

    // Messaging.
    const outboxNames = topKeys((s) => s.relayed, 8);
    draw(
      'relayed',
      xs,
      (outboxNames.length ? outboxNames : ['main']).map((o) => ({
        label: o + ' relayed/s',
        values: samples.map((s) => s.relayed[o] || 0),
      })),
      'events/s',
    );
    if (status) {
      const m = status.messaging;
      const relayRate = (name) => fmt(sum(last10.map((s) => s.relayed[name] || 0)) / Math.max(1, last10.length));
      fill(
        'messaging',
        el(
          'p',
          {},
          'broker: ' + m.broker + (m.relays ? '' : ' · relays and consumers run in the worker processes, not here'),
        ),
        table(
          ['outbox', 'backlog', 'oldest unsent', 'relayed/s'],
          m.outboxes.map((o) =>
            o.error
              ? [o.name, 'no answer: ' + o.error, '—', '—']
              : [
                  o.name,
                  o.backlog,
                  o.oldestMs === null ? '—' : fmt(o.oldestMs / 1000, 1) + ' s',
                  m.relays ? relayRate(o.name) : 'not here',
                ],
          ),
        ),
        m.groups.length
          ? table(
              ['consumer group', 'lag (events)', 'dead letters'],
              m.groups.map((g) => [
                g.group,
                m.lagReported ? g.lag : 'not reported by ' + m.broker,
                g.deadLetters === null ? 'no answer' : g.deadLetters >= 1000 ? '1000+' : g.deadLetters,
              ]),
            )
          : note('no consumer groups run in this process'),
      );
      // Cluster.
      const c = status.cluster;
      if (!c.configured)
        fill(
          'cluster',
          note('not configured: one PostgreSQL server, no replicas (DATABASE_URL with one host, no DATABASE_READ_URL)'),
        );
      else
        fill(
          'cluster',
          el('p', {}, 'primary: ' + (c.primary || 'unknown') + (c.error ? ' · ' + c.error : '')),
          c.replicas.length
            ? table(
                ['replica', 'state', 'lag bytes', 'replay lag ms'],
                c.replicas.map((r) => [r.name, r.state, r.lagBytes, r.replayLagMs]),
              )
            : el('p', {}, 'no replica streams from the primary'),
          el(
            'p',
            {},
            c.reads
              ? c.reads.error
                ? 'read pool: no answer (' + c.reads.error + ')'
                : 'read pool: ' +
                  c.reads.host +
                  (c.reads.standby ? ' (replica, ' + fmt(c.reads.replayDelayMs, 0) + ' ms behind)' : ' (a primary)')
              : 'read pool: not configured',
          ),
          el(
            'p',
            {},
            'last failover: ' +
              (c.lastFailover
                ? new Date(c.lastFailover.at).toISOString() +
                  ' (' +
                  c.lastFailover.from +
                  ' → ' +
                  c.lastFailover.to +
                  ')'
                : 'none seen since the service started'),
          ),
        );
      // Contexts.
      const names = Object.keys(status.contexts);
      fill(
        'contexts',
        ...(names.length
          ? names.map((name) => {
              const value = status.contexts[name];
              if (value.error) return el('div', {}, [el('h3', {}, name), el('p', {}, 'no answer: ' + value.error)]);
              const scalars = Object.entries(value).filter(([, v]) => !Array.isArray(v));
              const lists = Object.entries(value).filter(([, v]) => Array.isArray(v));
              return el('div', { 'data-context': name }, [
                el('h3', {}, name),
                table(
                  ['', ''],
                  scalars.map(([k, v]) => [k, v === null ? '—' : String(v)]),
                ),
                ...lists.map(([k, list]) =>
                  list.length
                    ? table(
                        [k, ...Object.keys(list[0]).filter((c) => c !== 'id')],
                        list.map((row) => [
                          row.id,
                          ...Object.entries(row)
                            .filter(([c]) => c !== 'id')
                            .map(([, v]) => String(v)),
                        ]),
                      )
                    : el('p', {}, 'no ' + k),
                ),
              ]);
            })
          : [note('not configured: no context reports shards, two-phase commits or sagas')]),
      );
    } else {
      for (const id of ['messaging', 'cluster', 'contexts']) fill(id, el('p', {}, 'reading…'));
    }
  }

  const stateEl = document.getElementById('state');
  async function poll() {
    try {
      const answer = await fetch('/dashboard/api/samples?after=' + after, { headers, cache: 'no-store' });
      if (!answer.ok) throw new Error('HTTP ' + answer.status);
      const body = await answer.json();
      for (const s of body.samples) samples.push(s);
      if (samples.length > KEEP) samples.splice(0, samples.length - KEEP);
      if (samples.length) after = samples[samples.length - 1].t;
      if (body.status) status = body.status;
      stateEl.textContent = 'live · ' + new Date(body.now).toLocaleTimeString();
      stateEl.className = 'state live';
      render();
    } catch (error) {
      stateEl.textContent = 'not answering: ' + error.message;
      stateEl.className = 'state down';
    } finally {
      window.setTimeout(poll, 1000);
    }
  }
  poll();
})();
