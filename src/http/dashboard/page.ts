/** The dashboard's paths. */
export const DASHBOARD = '/dashboard';

/** Scripts and styles from the service only; the JSON from the same origin; nothing inline. */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

interface Panel {
  id: string;
  title: string;
  /** Charts drawn in the panel, by id. */
  charts: string[];
}

/** Every panel, in page order; the script fills each `[data-value]` (or its not-configured note). */
const PANELS: Panel[] = [
  { id: 'requests', title: 'Requests per second', charts: ['rps'] },
  { id: 'latency', title: 'Latency (ms), all routes', charts: ['latency'] },
  { id: 'routes', title: 'Routes, last 10 s', charts: [] },
  { id: 'errors', title: 'Errors by code', charts: ['errors'] },
  { id: 'pools', title: 'Pools', charts: ['pools'] },
  { id: 'transactions', title: 'Transactions', charts: ['tx'] },
  { id: 'messaging', title: 'Messaging', charts: ['relayed'] },
  { id: 'cache', title: 'Cache', charts: ['cache'] },
  { id: 'cluster', title: 'Cluster', charts: [] },
  { id: 'contexts', title: 'Contexts: shards, two-phase commits, sagas', charts: [] },
];

/**
 * The dashboard's page: a frame of panels the script fills from `/dashboard/api/samples` once a second.
 * `token`: carried on to the assets and the data (a page reached with `?token=`).
 */
export function dashboardPage(options: { token: string | undefined; browser: string }): string {
  const q = options.token ? `?token=${encodeURIComponent(options.token)}` : '';
  const panels = PANELS.map(
    (p) => `<section class="panel" data-panel="${p.id}">
  <h2>${escape(p.title)}</h2>
  ${p.charts.map((c) => `<div class="chart" data-chart="${c}"></div>`).join('\n  ')}
  <div class="value" data-value="${p.id}">…</div>
</section>`,
  ).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stratum dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${DASHBOARD}/assets/uplot.css${q}">
<link rel="stylesheet" href="${DASHBOARD}/assets/dashboard.css${q}">
</head>
<body>
<header>
  <h1>stratum</h1>
  <span id="state" class="state">connecting…</span>
  <nav><a href="${escape(options.browser)}${q}">Data browser</a> · <a href="/admin/traces${q}">Traces</a> · <a href="/metrics">/metrics</a> · <a href="/readyz">/readyz</a></nav>
</header>
<main id="panels">
${panels}
</main>
<script src="${DASHBOARD}/assets/uplot.js${q}"></script>
<script src="${DASHBOARD}/assets/dashboard.js${q}"></script>
</body>
</html>
`;
}
