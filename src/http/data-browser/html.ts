/** Markup that is already escaped: inserted as is by `html`. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

function render(value: unknown): string {
  if (value instanceof Html) return value.value;
  if (value === undefined || value === null || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/**
 * A template whose every interpolation is escaped, except `Html` values (and arrays of them); `undefined`,
 * `null` and `false` render nothing.
 * @example html`<td>${name}</td>`
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** Only inline styles, no scripts, nothing from another origin; forms post back here only. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLE = `
:root { color-scheme: light; --line: #d8dde3; --muted: #5b6570; --accent: #1f5fa8; --bad: #a3261b; --bg2: #f5f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1c232b; }
header { display: flex; gap: 1rem; align-items: baseline; padding: .7rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--bg2); }
header .brand { font-weight: 600; }
header nav a { margin-right: .4rem; }
main { padding: 1rem 1.2rem 3rem; max-width: 100%; }
h1 { font-size: 1.35rem; margin: .2rem 0 .8rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1.1rem 0 .4rem; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: .3rem 0 .8rem; }
th, td { border: 1px solid var(--line); padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: var(--bg2); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.cell { max-width: 28rem; overflow-wrap: anywhere; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
.null { color: var(--muted); font-style: italic; }
.muted, .hint { color: var(--muted); }
.error { color: var(--bad); border: 1px solid #e4b8b3; background: #fbeeed; padding: .45rem .7rem; border-radius: 4px; display: inline-block; }
.badge { display: inline-block; padding: 0 .4rem; border-radius: 3px; background: #e6edf5; color: #264a73; font-size: 12px; }
.badge.estimate { background: #fdf1dc; color: #7a4f05; }
pre { background: var(--bg2); border: 1px solid var(--line); padding: .6rem .8rem; overflow-x: auto; font-size: 12.5px; }
pre.query { white-space: pre-wrap; overflow-wrap: anywhere; }
.pager { margin: .6rem 0; display: flex; gap: 1rem; align-items: baseline; }
.scroll { overflow-x: auto; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .3rem 0 1rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
`;

/** A whole page: header with the breadcrumb trail, then `body`. */
export function layout(title: string, crumbs: Array<{ label: string; href?: string }>, body: Html): string {
  const trail = crumbs.map(
    (c, i) =>
      html`${i > 0 ? html`<span class="muted">/</span> ` : ''}${c.href ? html`<a href="${c.href}">${c.label}</a>` : html`<span>${c.label}</span>`} `,
  );
  return `<!doctype html>${html`<html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="no-referrer" />
      <title>${title} · stratum data browser</title>
      <link rel="icon" href="data:," />
      <style>
        ${new Html(STYLE)}
      </style>
    </head>
    <body>
      <header>
        <span class="brand">stratum</span>
        <nav>${trail}</nav>
        <span class="muted">read-only</span>
      </header>
      <main>${body}</main>
    </body>
  </html>`}`;
}
