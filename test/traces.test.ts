import http from 'node:http';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { launchChromiumOrSkip, watchPage } from './support/browser.ts';
import { serveStratum, type Served } from './support/child.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

// One account read through the split deployment (real processes) yields one trace, exported by OTLP/HTTP to a
// receiver in this process: spans from the gateway, accounts-data, images and quotes, each parented by the
// span that called it; and the same trace, gathered across the services, at the gateway's /admin/traces.

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
  service: string;
}

const received: OtlpSpan[] = [];
let receiver: http.Server;
let endpoint: string;
let db: TestDatabase;
const running: Record<string, Served> = {};

/** OTLP/JSON ids are hex; a base64 one (the protobuf JSON mapping) is turned into hex. */
const hex = (id: string | undefined) =>
  id === undefined || id === '' ? undefined : /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');

function collect(body: string): void {
  const message = JSON.parse(body) as {
    resourceSpans: Array<{
      resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
      scopeSpans: Array<{ spans: Array<Omit<OtlpSpan, 'service'>> }>;
    }>;
  };
  for (const rs of message.resourceSpans) {
    const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
    for (const ss of rs.scopeSpans)
      for (const span of ss.spans)
        received.push({
          ...span,
          traceId: hex(span.traceId)!,
          spanId: hex(span.spanId)!,
          parentSpanId: hex(span.parentSpanId),
          service,
        });
  }
}

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value === undefined ? undefined : Object.values(value)[0];
};

async function start(name: string, env: Record<string, string>): Promise<Served> {
  const served = await serveStratum({
    DATABASE_URL: db.url,
    INSTANCE_NAME: name,
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    ...env,
  });
  running[name] = served;
  return served;
}

const traceparent = () => {
  const traceId = randomBytes(16).toString('hex');
  const parent = randomBytes(8).toString('hex');
  return { traceId, parent, header: `00-${traceId}-${parent}-01` };
};

let gateway: string;

beforeAll(async () => {
  receiver = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      if (request.url === '/v1/traces' && String(request.headers['content-type']).includes('json')) collect(body);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
  db = await createTestDatabase();
  const data = await start('data-1', { ROLE: 'accounts-data' });
  const [images, q1, q2] = await Promise.all([
    start('images-1', { ROLE: 'images', ACCOUNTS_DATA_URLS: data.url }),
    start('quotes-1', { ROLE: 'quotes' }),
    start('quotes-2', { ROLE: 'quotes' }),
  ]);
  gateway = (
    await start('gateway-1', {
      ROLE: 'accounts',
      IMAGES_TIMEOUT_MS: '3000',
      QUOTES_TIMEOUT_MS: '3000',
      ACCOUNTS_DATA_URLS: data.url,
      IMAGES_URLS: images.url,
      QUOTES_URLS: `${q1.url},${q2.url}`,
    })
  ).url;
}, 180_000);

afterAll(async () => {
  for (const served of Object.values(running)) {
    served.child.kill('SIGKILL');
    await served.exited;
  }
  await db?.drop();
  await new Promise((resolve) => receiver?.close(resolve));
});

describe('traces across the split deployment', () => {
  it('one account read is one trace with spans of all four services, each parented by its caller', async () => {
    const created = await fetch(`${gateway}/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Traced_Person' }),
    });
    expect(created.status).toBe(201);
    const id = ((await created.json()) as { id: string }).id;
    const image = await fetch(`${gateway}/accounts/${id}/image`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: 'https://img.example/traced.png' }),
    });
    expect(image.status).toBe(200);

    const trace = traceparent();
    const read = await fetch(`${gateway}/accounts/${id}`, { headers: { traceparent: trace.header } });
    expect(read.status).toBe(200);
    const view = (await read.json()) as { degraded?: string[] };
    expect(view.degraded).toBeUndefined();

    const services = ['stratum-accounts', 'stratum-accounts-data', 'stratum-images', 'stratum-quotes'];
    const spansOf = () => received.filter((s) => s.traceId === trace.traceId);
    await vi.waitFor(
      () => {
        const seen = new Set(spansOf().map((s) => s.service));
        for (const service of services) expect(seen).toContain(service);
        // The data service's statement spans end before its request span: wait for the whole of it.
        expect(spansOf().filter((s) => s.service === 'stratum-accounts-data' && s.kind === 2)).toHaveLength(1);
      },
      { timeout: 15_000, interval: 100 },
    );
    const spans = spansOf();
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    // OTLP kinds: 1 internal, 2 server, 3 client.
    const servers = spans.filter((s) => s.kind === 2);
    const root = servers.find((s) => s.service === 'stratum-accounts')!;
    expect(root.name).toBe('GET /accounts/:id');
    expect(root.parentSpanId).toBe(trace.parent);
    expect(servers.map((s) => s.service).sort()).toEqual(services);

    // Every other service's request span is the child of a client span of the gateway that named it.
    for (const [service, dependency] of [
      ['stratum-accounts-data', 'accounts-data'],
      ['stratum-images', 'images'],
      ['stratum-quotes', 'quotes'],
    ] as const) {
      const server = servers.find((s) => s.service === service)!;
      const caller = byId.get(server.parentSpanId!);
      expect(caller, `${service}'s parent`).toBeDefined();
      expect(caller!.service).toBe('stratum-accounts');
      expect(caller!.kind).toBe(3);
      expect(attribute(caller!, 'peer.service')).toBe(dependency);
      expect(caller!.parentSpanId).toBe(root.spanId);
    }

    // The data service's transaction and its statements, named by operation and table, never by values.
    const dataServer = servers.find((s) => s.service === 'stratum-accounts-data')!;
    const transaction = spans.find((s) => s.service === 'stratum-accounts-data' && s.name.startsWith('transaction '));
    expect(transaction?.parentSpanId).toBe(dataServer.spanId);
    const statements = spans.filter((s) => s.parentSpanId === transaction!.spanId);
    expect(statements.length).toBeGreaterThan(0);
    for (const statement of statements) {
      expect(statement.name).toMatch(/^[A-Z]+( [\w.]+)?$/);
      expect(attribute(statement, 'db.system.name')).toBe('postgresql');
      expect(JSON.stringify(statement.attributes)).not.toContain(id);
    }
    expect(statements.some((s) => s.name.includes('accounts.'))).toBe(true);

    // The gateway's page gathers the same trace from every service it calls.
    const page = await fetch(`${gateway}/admin/traces/${trace.traceId}`, { headers: { accept: 'application/json' } });
    expect(page.status).toBe(200);
    const gathered = (await page.json()) as {
      spans: Array<{ spanId: string; service: string }>;
      unreachable: string[];
    };
    expect(gathered.unreachable).toEqual([]);
    expect(new Set(gathered.spans.map((s) => s.service))).toEqual(new Set(services));
    expect(new Set(gathered.spans.map((s) => s.spanId))).toEqual(new Set(spans.map((s) => s.spanId)));
    const html = await fetch(`${gateway}/admin/traces/${trace.traceId}`);
    expect(html.headers.get('content-type')).toContain('text/html');
    expect(await html.text()).toContain('GET /accounts/:id');
  });

  it('shows the trace as a person sees it: the list, then one trace as a waterfall across the services', async (ctx) => {
    const trace = traceparent();
    const created = await fetch(`${gateway}/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Shown_Person' }),
    });
    const id = ((await created.json()) as { id: string }).id;
    expect((await fetch(`${gateway}/accounts/${id}`, { headers: { traceparent: trace.header } })).status).toBe(200);
    // The downstream services' spans are kept as their requests end, before the gateway's ends.
    const browser = await launchChromiumOrSkip(ctx);
    try {
      const { page, errors } = watchPage(await browser.newPage());
      await page.goto(`${gateway}/admin/traces`);
      const link = page.locator(`a[href="/admin/traces/${trace.traceId}"]`);
      await expect.poll(() => link.textContent()).toBe('GET /accounts/:id');
      await Promise.all([page.waitForURL(`**/admin/traces/${trace.traceId}`), link.click()]);
      const rows = page.locator('tbody tr');
      const shown = await rows.evaluateAll((trs) =>
        trs.map((tr) => ({
          span: tr.getAttribute('data-span'),
          parent: tr.getAttribute('data-parent'),
          name: tr.querySelector('td')!.childNodes[0]!.textContent!.trim(),
          service: tr.querySelector('td.svc')!.textContent!.split(' · ')[0]!.trim(),
          bar: (tr.querySelector('.bar') as HTMLElement).getBoundingClientRect().width,
        })),
      );
      expect(new Set(shown.map((r) => r.service))).toEqual(
        new Set(['stratum-accounts', 'stratum-accounts-data', 'stratum-images', 'stratum-quotes']),
      );
      // The first row is the gateway's request; every other row comes after its parent (a tree, top down).
      expect(shown[0]).toMatchObject({ name: 'GET /accounts/:id', service: 'stratum-accounts' });
      for (const [i, row] of shown.entries())
        if (i > 0)
          expect(
            shown.slice(0, i).map((r) => r.span),
            row.name,
          ).toContain(row.parent);
      for (const row of shown) expect(row.bar, row.name).toBeGreaterThan(0);
      // The screenshot is in test-output/, as PNG.
      const output = path.resolve(import.meta.dirname, '..', 'test-output');
      fs.mkdirSync(output, { recursive: true });
      await page.screenshot({ path: path.join(output, 'trace-waterfall.png'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  it('carries the trace of a write in its outbox event, to the consumers', async () => {
    const trace = traceparent();
    const created = await fetch(`${gateway}/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: trace.header },
      body: JSON.stringify({ name: 'Outboxed_Person' }),
    });
    expect(created.status).toBe(201);
    const id = ((await created.json()) as { id: string }).id;
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<{ headers: Record<string, string> }[]>`
        select headers from messaging.outbox where key = ${id}`;
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows)
        expect(row.headers.traceparent).toMatch(new RegExp(`^00-${trace.traceId}-[0-9a-f]{16}-01$`));
    } finally {
      await sql.end();
    }
  });

  it('answers 404 TRACE.NOT_FOUND for a trace it holds nothing of, 400 for a malformed id', async () => {
    const unknown = await fetch(`${gateway}/admin/traces/${randomBytes(16).toString('hex')}`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { code: string }).code).toBe('TRACE.NOT_FOUND');
    const bad = await fetch(`${gateway}/admin/traces/not-a-trace`);
    expect(bad.status).toBe(400);
  });
});
