import { html, layout, type Html } from './html.ts';
import {
  EXACT_COUNT_LIMIT,
  PAGE_SIZE,
  STATEMENT_TIMEOUT_MS,
  encodeKey,
  type DatabaseListing,
  type DataBrowserContext,
  type Reference,
  type RowCount,
  type RowPage,
  type TablePage,
} from './sources.ts';

export const BASE = '/dashboard/data-browser';

/** Builds the browser's links; carries `?token=` when the request authenticated with it. */
export class Links {
  constructor(private readonly token: string | undefined) {}

  private query(params: Record<string, string | undefined>): string {
    const q = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) if (value !== undefined) q.set(name, value);
    if (this.token !== undefined) q.set('token', this.token);
    const text = q.toString();
    return text ? `?${text}` : '';
  }

  index(): string {
    return `${BASE}${this.query({})}`;
  }

  table(at: Place, options: { after?: string; col?: string; eq?: string } = {}): string {
    return `${BASE}/${segments(at)}${this.query(options)}`;
  }

  row(at: Place, key: readonly string[]): string {
    return `${BASE}/${segments(at)}/row${this.query({ key: encodeKey(key) })}`;
  }
}

/** Where a table is: context, database, schema, table. */
export interface Place {
  context: string;
  database: string;
  schema: string;
  table: string;
}

const segments = (at: Place) =>
  [at.context, at.database, at.schema, at.table].map((s) => encodeURIComponent(s)).join('/');

/** A database of a context that keeps its data on several (the orders shards) is a shard. */
function databaseWord(context: DataBrowserContext, database: string): 'shard' | 'database' {
  return context.databases.length > 1 || /^shard-/.test(database) ? 'shard' : 'database';
}

const number = (n: number) => n.toLocaleString('en-US');

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function rowCount(rows: RowCount): Html {
  switch (rows.kind) {
    case 'exact':
      return html`${number(rows.n)} <span class="badge" title="count(*)">exact</span>`;
    case 'estimate':
      return html`≈ ${number(rows.n)}
        <span class="badge estimate" title="pg_class.reltuples, the planner's estimate">estimate</span>`;
    case 'over':
      return html`&gt; ${number(rows.n)}
        <span class="badge estimate" title="not analyzed yet: no estimate">not analyzed</span>`;
  }
}

const cell = (value: string | null, truncated: boolean) =>
  value === null
    ? html`<span class="null">null</span>`
    : html`${value}${truncated ? html`<span class="muted">…</span>` : ''}`;

const crumbsOf = (links: Links, at?: Place, more: Array<{ label: string; href?: string }> = []) => [
  { label: 'dashboard', href: '/dashboard' },
  { label: 'data browser', href: links.index() },
  ...(at
    ? [{ label: `${at.context} · ${at.database}` }, { label: `${at.schema}.${at.table}`, href: links.table(at) }]
    : []),
  ...more,
];

/** The start page: every context, each database of it, the tables of its schemas with rows and size. */
export function indexPage(
  links: Links,
  listings: Array<{ context: DataBrowserContext; databases: DatabaseListing[] }>,
): string {
  const sections = listings.map(
    ({ context, databases }) =>
      html`<section class="context" data-context="${context.name}">
        <h2>${context.name} <span class="muted">schemas ${context.schemas.join(', ') || '(none)'}</span></h2>
        ${databases.length === 0 ? html`<p class="muted">no database</p>` : ''}
        ${databases.map(
          (db) =>
            html`<div class="database" data-database="${db.database}">
              <h3>
                ${databaseWord(context, db.database)}
                ${db.database}${db.role ? html` <span class="muted">read as role ${db.role}</span>` : ''}
              </h3>
              ${db.error ? html`<p class="error">could not list this database: ${db.error}</p>` : ''}
              ${db.schemas.map((s) =>
                s.state === 'missing'
                  ? html`<p class="muted">schema ${s.schema} does not exist in this database</p>`
                  : s.state === 'denied'
                    ? html`<p class="error" data-denied="${s.schema}">
                        no access to schema ${s.schema}: role ${db.role ?? '?'} has no USAGE on it, so nothing of it is
                        shown
                      </p>`
                    : s.tables.length === 0
                      ? html`<p class="muted">schema ${s.schema} has no tables</p>`
                      : html`<table class="tables">
                          <thead>
                            <tr>
                              <th>table</th>
                              <th class="num">rows</th>
                              <th class="num">size</th>
                            </tr>
                          </thead>
                          <tbody>
                            ${s.tables.map(
                              (t) =>
                                html`<tr data-table="${t.schema}.${t.table}">
                                  <td>
                                    ${t.readable ? html`<a href="${links.table({ context: context.name, database: db.database, schema: t.schema, table: t.table })}">${t.schema}.${t.table}</a>` : html`${t.schema}.${t.table}`}
                                  </td>
                                  <td class="num">
                                    ${t.rows ? rowCount(t.rows) : t.readable ? html`<span class="error">${t.error ?? 'not counted'}</span>` : html`<span class="muted">no SELECT right</span>`}
                                  </td>
                                  <td class="num">${bytes(t.sizeBytes)}</td>
                                </tr>`,
                            )}
                          </tbody>
                        </table>`,
              )}
            </div>`,
        )}
      </section>`,
  );
  return layout(
    'data browser',
    crumbsOf(links),
    html`<h1>Data browser</h1>
      <p class="hint">
        Read-only. Each context is read on its own pool, as its own role, and only in its own schemas: a page never
        shows what the context itself could not read. Every page runs SELECT or EXPLAIN in a
        <code>begin read only</code> transaction with a statement_timeout of ${STATEMENT_TIMEOUT_MS} ms. Rows are
        counted exactly up to ${number(EXACT_COUNT_LIMIT)}; beyond that the planner's estimate is shown.
      </p>
      ${listings.length === 0 ? html`<p class="muted">no context is configured</p>` : ''} ${sections}`,
  );
}

function facts(items: Array<[string, Html | string]>): Html {
  return html`<dl class="facts">
    ${items.map(
      ([k, v]) =>
        html`<dt>${k}</dt>
          <dd>${v}</dd>`,
    )}
  </dl>`;
}

/** A page of rows with its pager, the table's indexes and the plan of the page's query. */
export function tablePage(
  links: Links,
  context: DataBrowserContext,
  at: Place,
  page: TablePage,
  after: string | undefined,
): string {
  const { meta } = page;
  const keyColumns = new Set(meta.byCtid ? [] : meta.key);
  const filterFk = page.filter
    ? meta.outgoing.find((fk) => fk.columns.length === 1 && fk.columns[0] === page.filter!.column)
    : undefined;
  const filterOpts = page.filter ? { col: page.filter.column, eq: page.filter.value } : {};
  const where = page.filter
    ? html`<p class="filter" data-filter="${page.filter.column}">
        rows where <code>${page.filter.column} = ${page.filter.value}</code> ·
        <a href="${links.table(at)}">all rows</a>${
          filterFk && context.schemas.includes(filterFk.refSchema)
            ? html` ·
                <a
                  class="referenced"
                  href="${
                    filterFk.refIsPrimaryKey
                      ? links.row({ ...at, schema: filterFk.refSchema, table: filterFk.refTable }, [page.filter.value])
                      : links.table(
                          { ...at, schema: filterFk.refSchema, table: filterFk.refTable },
                          { col: filterFk.refColumns[0]!, eq: page.filter.value },
                        )
                  }"
                  >the ${filterFk.refSchema}.${filterFk.refTable} row it references</a
                >`
            : ''
        }
      </p>`
    : '';
  const pager = html`<nav class="pager">
    ${after !== undefined ? html`<a class="first" href="${links.table(at, filterOpts)}">⇤ first page</a>` : ''}
    <span class="muted"
      >${page.rows.length}
      row${page.rows.length === 1 ? '' : 's'}${after !== undefined ? ' after the key ' : ''}${after !== undefined ? html`<code>${after}</code>` : ''}</span
    >
    ${page.next !== undefined ? html`<a class="next" rel="next" href="${links.table(at, { ...filterOpts, after: page.next })}">next ${PAGE_SIZE} →</a>` : html`<span class="end muted">end of table</span>`}
  </nav>`;
  const grid = html`<div class="scroll">
    <table class="rows">
      <thead>
        <tr>
          <th></th>
          ${meta.columns.map(
            (c) =>
              html`<th title="${c.type}">
                ${c.name}${keyColumns.has(c.name) ? html` <span class="badge">key</span>` : ''}
              </th>`,
          )}
        </tr>
      </thead>
      <tbody>
        ${page.rows.map(
          (r) =>
            html`<tr data-key="${encodeKey(r.key)}">
              <td><a class="row-link" href="${links.row(at, r.key)}">row</a></td>
              ${r.cells.map((c) => html`<td class="cell">${cell(c.value, c.truncated)}</td>`)}
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
  return layout(
    `${meta.schema}.${meta.table}`,
    crumbsOf(links, at),
    html`<h1>${meta.schema}.${meta.table}</h1>
      ${facts([
        ['context', context.name],
        [databaseWord(context, at.database), at.database],
        ['read as role', page.role],
        [
          'paged by',
          meta.byCtid
            ? html`ctid <span class="muted">(no primary key: physical position, which an update changes)</span>`
            : html`primary key (${meta.key.join(', ')})`,
        ],
      ])}
      ${where} ${pager} ${page.rows.length === 0 ? html`<p class="muted">no rows</p>` : grid}
      ${page.rows.length > 0 ? pager : ''}
      <h2>Indexes</h2>
      ${
        meta.indexes.length === 0
          ? html`<p class="muted">none</p>`
          : html`<table class="indexes">
              <thead>
                <tr>
                  <th>index</th>
                  <th>definition</th>
                </tr>
              </thead>
              <tbody>
                ${meta.indexes.map(
                  (i) =>
                    html`<tr>
                      <td>${i.name}</td>
                      <td class="cell">${i.definition}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <h2>This page's query and its plan</h2>
      <pre class="query">${page.query.text}</pre>
      ${page.query.params.length ? html`<p class="params">parameters: ${page.query.params.map((p, i) => html`${i ? ', ' : ''}<code>$${i + 1} = ${p}</code>`)}</p>` : ''}
      <pre class="plan">${page.plan}</pre>`,
  );
}

function referenceLink(links: Links, context: DataBrowserContext, at: Place, ref: Reference, incoming: boolean): Html {
  const fk = ref.key;
  if (incoming) {
    const where = html`<code
      >${fk.columns.map((c, i) => `${i ? ' and ' : ''}${c} = ${ref.values[i] ?? 'null'}`).join('')}</code
    >`;
    const label = html`${fk.schema}.${fk.table} where ${where}`;
    const count = ref.count
      ? html` <span class="muted"
          >${ref.count.more ? 'more than ' : ''}${number(ref.count.n)} row${ref.count.n === 1 ? '' : 's'}</span
        >`
      : '';
    if (ref.unavailable) return html`${label} <span class="muted">(${ref.unavailable})</span>`;
    if (fk.columns.length === 1 && ref.values[0] !== null && context.schemas.includes(fk.schema))
      return html`<a
          class="referencing"
          data-fk="${fk.name}"
          href="${links.table(
            { ...at, schema: fk.schema, table: fk.table },
            { col: fk.columns[0]!, eq: ref.values[0]! },
          )}"
          >${label}</a
        >${count}`;
    return html`${label}${count}`;
  }
  const target = { ...at, schema: fk.refSchema, table: fk.refTable };
  const label = html`${fk.refSchema}.${fk.refTable} (${fk.refColumns.join(', ')}) =
    <code>${ref.values.map((v, i) => `${i ? ', ' : ''}${v ?? 'null'}`).join('')}</code>`;
  if (ref.values.some((v) => v === null)) return html`${label} <span class="muted">(references nothing)</span>`;
  if (!context.schemas.includes(fk.refSchema))
    return html`${label} <span class="muted">(${fk.refSchema} is not a schema of this context)</span>`;
  const href = fk.refIsPrimaryKey
    ? links.row(target, ref.values as string[])
    : fk.refColumns.length === 1
      ? links.table(target, { col: fk.refColumns[0]!, eq: ref.values[0]! })
      : undefined;
  return href ? html`<a class="referenced" data-fk="${fk.name}" href="${href}">${label}</a>` : label;
}

/** One row: its values, where it is, what it references and what references it (an order's items). */
export function rowPage(links: Links, context: DataBrowserContext, at: Place, row: RowPage): string {
  const { meta } = row;
  const word = databaseWord(context, at.database);
  return layout(
    `${meta.schema}.${meta.table} ${encodeKey(row.key)}`,
    crumbsOf(links, at, [{ label: `row ${encodeKey(row.key)}` }]),
    html`<h1>${meta.schema}.${meta.table} <span class="muted">row</span> <code>${encodeKey(row.key)}</code></h1>
      <p class="where">
        on ${word} <strong class="database-name">${at.database}</strong> of context ${context.name}, read as role
        ${row.role}
      </p>
      <table class="row">
        <thead>
          <tr>
            <th>column</th>
            <th>type</th>
            <th>value</th>
          </tr>
        </thead>
        <tbody>
          ${row.values.map(
            (v) =>
              html`<tr data-column="${v.column.name}">
                <th>${v.column.name}</th>
                <td class="muted">${v.column.type}</td>
                <td class="cell">${cell(v.value, v.truncated)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      ${
        row.incoming.length
          ? html`<h2>Referenced by</h2>
              <ul class="incoming">
                ${row.incoming.map(
                  (r) =>
                    html`<li>
                      ${referenceLink(links, context, at, r, true)} <span class="muted">on this ${word}</span>
                    </li>`,
                )}
              </ul>`
          : ''
      }
      ${
        row.outgoing.length
          ? html`<h2>References</h2>
              <ul class="outgoing">
                ${row.outgoing.map((r) => html`<li>${referenceLink(links, context, at, r, false)}</li>`)}
              </ul>`
          : ''
      }
      <h2>Query</h2>
      <pre class="query">${row.query.text}</pre>
      <p class="params">
        parameters: ${row.query.params.map((p, i) => html`${i ? ', ' : ''}<code>$${i + 1} = ${p}</code>`)}
      </p>`,
  );
}

/** A page that could not be shown: why, and nothing of the data. */
export function errorPage(links: Links, status: number, message: string, at?: Place): string {
  return layout(
    `error ${status}`,
    crumbsOf(links, at),
    html`<h1>Cannot show this</h1>
      <p class="error" data-status="${status}">${message}</p>
      <p><a href="${links.index()}">back to the data browser</a></p>`,
  );
}
