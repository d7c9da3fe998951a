import fs from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { PerSecondSeries } from './timeline.ts';

/** A number worth seeing first, e.g. "failed 3"; `bad` ones are shown in red. */
export interface ReportCard {
  label: string;
  value: string | number;
  tone?: 'good' | 'bad';
  note?: string;
}

/** A stretch of the run shaded on every chart, e.g. the broker being down; seconds from the start. */
export interface ReportWindow {
  label: string;
  fromS: number;
  toS: number;
}

export interface ReportTable {
  title: string;
  columns: string[];
  /** Numbers are right-aligned; null shows as "-". */
  rows: (string | number | null)[][];
  note?: string;
}

/** Everything one self-contained HTML report shows. */
export interface ReportPage {
  /** e.g. "loadtest accounts-mixed". */
  title: string;
  /** What ran, one line each. */
  lines: string[];
  /** When the run started (ISO 8601). */
  startedAt: string;
  /** Names of the per-second counts: requests, or events. */
  labels: { sent: string; answered: string; errors: string };
  cards: ReportCard[];
  series: PerSecondSeries;
  windows: ReportWindow[];
  tables: ReportTable[];
  /** The report as the command printed it. */
  text: string[];
  /** The JSON summary (what --json writes). */
  summary: unknown;
}

/** The charts of a page: each becomes one uPlot chart in a `[data-chart]` container. */
export function chartsOf(page: ReportPage): { id: string; title: string }[] {
  return [
    { id: 'throughput', title: `Throughput: ${page.labels.answered} per second` },
    { id: 'latency', title: 'Latency per second: p50, p90, p99 (ms, from the scheduled start)' },
    { id: 'statuses', title: 'Status codes per second (client codes when no answer came)' },
    ...(Object.keys(page.series.kindsP99).length > 1 ? [{ id: 'kinds', title: 'p99 per second by kind (ms)' }] : []),
  ];
}

const require = createRequire(import.meta.url);
let assets: { uplotJs: string; uplotCss: string; pageJs: string; pageCss: string } | undefined;

/** uPlot and the page's own script and styles, read once, to be inlined. */
function readAssets() {
  assets ??= {
    uplotJs: fs.readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    uplotCss: fs.readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
    pageJs: fs.readFileSync(new URL('./html-report-page.js', import.meta.url), 'utf8'),
    pageCss: fs.readFileSync(new URL('./html-report-page.css', import.meta.url), 'utf8'),
  };
  return assets;
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** JSON that cannot end its <script> element early. */
const scriptJson = (value: unknown) =>
  JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');

/** Script or style text that cannot end its element early. */
const inline = (text: string, tag: 'script' | 'style') => text.replace(new RegExp(`</(${tag})`, 'gi'), '<\\/$1');

function cell(value: string | number | null): string {
  if (value === null) return '<td class="num">-</td>';
  if (typeof value === 'number') return `<td class="num">${escapeHtml(String(value))}</td>`;
  return `<td>${escapeHtml(value)}</td>`;
}

function renderTable(table: ReportTable): string {
  const head = table.columns.map((c, i) => `<th${i === 0 ? '' : ' class="num"'}>${escapeHtml(c)}</th>`).join('');
  const body =
    table.rows.length === 0
      ? `<tr><td colspan="${table.columns.length}" class="empty">none</td></tr>`
      : table.rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n');
  return `<section class="table"><h2>${escapeHtml(table.title)}</h2>${table.note ? `<p class="note">${escapeHtml(table.note)}</p>` : ''}
<table><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table></section>`;
}

function renderCard(card: ReportCard): string {
  const tone = card.tone ? ` ${card.tone}` : '';
  return `<div class="card${tone}"><div class="value">${escapeHtml(String(card.value))}</div><div class="label">${escapeHtml(card.label)}</div>${
    card.note ? `<div class="card-note">${escapeHtml(card.note)}</div>` : ''
  }</div>`;
}

/**
 * One HTML file that shows the page with no network: uPlot's script and styles and the data are inline.
 * @example await writeFile('run.html', renderHtmlReport(page));
 */
export function renderHtmlReport(page: ReportPage): string {
  const a = readAssets();
  const windows = page.windows.length
    ? `<p class="windows">${page.windows
        .map(
          (w) => `<span class="window">${escapeHtml(w.label)}: ${w.fromS.toFixed(1)} s to ${w.toS.toFixed(1)} s</span>`,
        )
        .join(' ')}</p>`
    : '';
  const charts = chartsOf(page)
    .map(
      (c) =>
        `<section class="chart"><h2>${escapeHtml(c.title)}</h2><div class="plot" data-chart="${c.id}"></div></section>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title>
<style>${inline(a.uplotCss, 'style')}</style>
<style>${inline(a.pageCss, 'style')}</style>
</head>
<body>
<header>
<h1>${escapeHtml(page.title)}</h1>
${page.lines.map((l) => `<p class="line">${escapeHtml(l)}</p>`).join('\n')}
<p class="line muted">started ${escapeHtml(page.startedAt)}</p>
</header>
<section class="cards">
${page.cards.map(renderCard).join('\n')}
</section>
${windows}
<div class="charts">
${charts}
</div>
${page.tables.map(renderTable).join('\n')}
<section class="text"><h2>Printed report</h2><pre>${escapeHtml(page.text.join('\n'))}</pre></section>
<details><summary>JSON summary</summary><pre>${escapeHtml(JSON.stringify(page.summary, null, 2))}</pre></details>
<script type="application/json" id="report-data">${scriptJson(page)}</script>
<script>${inline(a.uplotJs, 'script')}</script>
<script>${inline(a.pageJs, 'script')}</script>
</body>
</html>
`;
}

/** Writes the page to `file` (creating its folder). */
export async function writeHtmlReport(file: string, page: ReportPage): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, renderHtmlReport(page));
}

const two = (n: number) => String(n).padStart(2, '0');

/**
 * Where a run writes its HTML report: `--html FILE`; else beside `--json FILE` (its .json replaced by .html);
 * else `<base>-<yyyymmdd-hhmmss>.html` in `cwd`. Null with `--no-html`.
 * @example htmlReportPath({ json: 'out/run.json' }, 'loadtest-accounts-read') // <cwd>/out/run.html
 */
export function htmlReportPath(
  choice: { html?: string | undefined; json?: string | undefined; noHtml?: boolean },
  base: string,
  now: Date = new Date(),
  cwd: string = process.cwd(),
): string | null {
  if (choice.noHtml) return null;
  if (choice.html) return path.resolve(cwd, choice.html);
  if (choice.json) return path.resolve(cwd, `${choice.json.replace(/\.json$/i, '')}.html`);
  const stamp = `${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}-${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
  return path.resolve(cwd, `${base}-${stamp}.html`);
}
