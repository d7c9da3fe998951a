import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { serveStratum, type Served } from './support/child.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

// The split accounts deployment as real processes (`stratum serve` with ROLE=...), on one test database:
// the gateway, accounts-data, images and two quotes instances, killed with SIGKILL and brought back.
let db: TestDatabase;
const running: Record<string, Served> = {};
const ports: Record<string, string> = {};

async function start(name: string, env: Record<string, string>): Promise<Served> {
  const served = await serveStratum({
    DATABASE_URL: db.url,
    INSTANCE_NAME: name,
    ...(ports[name] ? { PORT: ports[name]! } : {}),
    ...env,
  });
  ports[name] = new URL(served.url).port;
  running[name] = served;
  return served;
}

async function kill(name: string): Promise<void> {
  const served = running[name]!;
  served.child.kill('SIGKILL');
  await served.exited;
  delete running[name];
}

// Timeouts far above what a loaded machine takes: a part is degraded here only because its service is down.
const gatewayEnv = () => ({
  ROLE: 'accounts',
  // A request deadline that a busy machine does not reach: these tests are about which instance answers.
  TX_DEADLINE_MS: '10000',
  IMAGES_TIMEOUT_MS: '3000',
  QUOTES_TIMEOUT_MS: '3000',
  ACCOUNTS_DATA_URLS: running['data-1']!.url,
  IMAGES_URLS: running['images-1']!.url,
  QUOTES_URLS: `${running['quotes-1']!.url},${running['quotes-2']!.url}`,
});
const gw = () => running['gateway-1']!.url;
const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});
interface View {
  id: string;
  name: string;
  events: Array<{ eventName: string }>;
  imageData: { url: string } | null;
  quote: { quote: string; language: string; ipAddress: string };
  servedBy: Record<string, string>;
  degraded?: string[];
}
const read = async (id: string) => {
  const res = await fetch(`${gw()}/accounts/${id}`);
  return { status: res.status, body: (await res.json()) as View };
};

let account: string;

beforeAll(async () => {
  db = await createTestDatabase();
  await start('data-1', { ROLE: 'accounts-data' });
  await Promise.all([
    start('images-1', { ROLE: 'images', ACCOUNTS_DATA_URLS: running['data-1']!.url }),
    start('quotes-1', { ROLE: 'quotes' }),
    start('quotes-2', { ROLE: 'quotes' }),
  ]);
  await start('gateway-1', gatewayEnv());
  const created = await fetch(`${gw()}/accounts`, json({ name: 'Split_Person' }));
  expect(created.status).toBe(201);
  account = ((await created.json()) as { id: string }).id;
  const image = await fetch(`${gw()}/accounts/${account}/image`, {
    ...json({ url: 'https://img.example/split.png' }),
    method: 'PUT',
  });
  expect(image.status).toBe(200);
}, 180_000);

afterAll(async () => {
  for (const name of Object.keys(running)) await kill(name);
  await db?.drop();
});

describe('the split accounts deployment', () => {
  it('answers GET /accounts/:id through the gateway as one process does, with who served each part', async () => {
    const { status, body } = await read(account);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      id: account,
      name: 'Split_Person',
      events: [{ eventName: 'CREATED' }],
      imageData: { url: 'https://img.example/split.png' },
      servedBy: { gateway: 'gateway-1', account: 'data-1', image: 'images-1' },
    });
    expect(body.degraded).toBeUndefined();
    expect(['quotes-1', 'quotes-2']).toContain(body.servedBy.quote);
    expect(body.quote.quote.length).toBeGreaterThan(0);

    // One process on the same database: the same keys, the same account.
    const whole = await serveStratum({ DATABASE_URL: db.url, INSTANCE_NAME: 'all-1' });
    try {
      const res = await fetch(`${whole.url}/accounts/${account}`);
      const one = (await res.json()) as View;
      expect(Object.keys(one).sort()).toEqual(Object.keys(body).sort());
      expect({ ...one, quote: undefined, servedBy: undefined }).toEqual({
        ...body,
        quote: undefined,
        servedBy: undefined,
      });
      expect(one.servedBy).toEqual({ gateway: 'all-1', account: 'all-1', image: 'all-1', quote: 'all-1' });
    } finally {
      whole.child.kill('SIGTERM');
      await whole.exited;
    }

    // Each service has its own health, readiness, metrics and OpenAPI document.
    for (const [name, title] of [
      ['quotes-1', 'stratum quotes'],
      ['gateway-1', 'stratum accounts gateway'],
      ['data-1', 'stratum'],
    ] as const) {
      const base = running[name]!.url;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect(await (await fetch(`${base}/metrics`)).text()).toContain('stratum_http_request_duration_seconds');
      const doc = (await (await fetch(`${base}/docs/json`)).json()) as { info: { title: string }; paths: object };
      expect(doc.info.title).toBe(title);
    }
    const quotesDoc = (await (await fetch(`${running['quotes-1']!.url}/docs/json`)).json()) as { paths: object };
    expect(Object.keys(quotesDoc.paths)).toContain('/quotes/random');
    expect(Object.keys(quotesDoc.paths)).not.toContain('/accounts/{id}');
    const ready = (await (await fetch(`${running['quotes-1']!.url}/readyz`)).json()) as Record<string, unknown>;
    expect(ready.database).toBeUndefined();
  });

  it('answers bad input at the gateway with a 4xx and its code, and changes nothing', async () => {
    expect((await fetch(`${gw()}/accounts/not-a-uuid`)).status).toBe(400);
    const missing = await read('00000000-0000-4000-8000-000000000000');
    expect(missing.status).toBe(404);
    expect((missing.body as unknown as { code: string }).code).toBe('ACCOUNT.NOT_FOUND');
    const before = await db.sql`select count(*)::int as n from accounts.accounts`;
    for (const body of [{}, { name: '' }, { name: 'x', extra: 1 }]) {
      const res = await fetch(`${gw()}/accounts`, json(body));
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('REQUEST.INVALID');
    }
    const badImage = await fetch(`${gw()}/accounts/${account}/image`, { ...json({ url: 'ftp://x' }), method: 'PUT' });
    expect(badImage.status).toBe(400);
    expect(await db.sql`select count(*)::int as n from accounts.accounts`).toEqual(before);
    const [image] = await db.sql`select url from images.account_images where account_id = ${account}`;
    expect(image!.url).toBe('https://img.example/split.png');
  });

  it('takes writes through the gateway at once: creations with keys once each, renames all recorded', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => `split-key-${i}`);
    // Each key sent three times at once: one account per key.
    const creations = await Promise.all(
      keys.flatMap((key) =>
        [0, 1, 2].map(() =>
          fetch(`${gw()}/accounts`, {
            ...json({ name: `Keyed_${key}` }),
            headers: { 'content-type': 'application/json', 'idempotency-key': key },
          }).then(async (r) => ({ status: r.status, body: (await r.json()) as { id?: string } })),
        ),
      ),
    );
    for (const c of creations) expect([201, 409, 503]).toContain(c.status);
    const [{ n }] = (await db.sql`
      select count(*)::int as n from accounts.accounts where name like 'Keyed_split-key-%'`) as unknown as [
      { n: number },
    ];
    expect(n).toBeLessThanOrEqual(keys.length);
    for (const key of keys) {
      const ids = new Set(
        creations.filter((c, i) => Math.floor(i / 3) === keys.indexOf(key) && c.status === 201).map((c) => c.body.id),
      );
      expect(ids.size).toBeLessThanOrEqual(1);
    }

    // 30 renames of one hot account at once: each answered; each that succeeded left its event, one that failed
    // (a 503 after its call may have reached the data service) at most one. The gateway never sends one twice.
    const renames = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        fetch(`${gw()}/accounts/${account}`, { ...json({ name: `Split_Person_${i}` }), method: 'PUT' }).then(
          (r) => r.status,
        ),
      ),
    );
    for (const s of renames) expect([200, 503]).toContain(s);
    const ok = renames.filter((s) => s === 200).length;
    expect(ok).toBeGreaterThan(0);
    const [row] = await db.sql`
      select a.name, (select count(*)::int from accounts.account_events e where e.account_id = a.id and e.event_name = 'UPDATED') as updates
        from accounts.accounts a where a.id = ${account}`;
    expect(row!.updates).toBeGreaterThanOrEqual(ok);
    expect(row!.updates).toBeLessThanOrEqual(renames.length);
    expect(row!.name).toMatch(/^Split_Person_\d+$/);
    const { body } = await read(account);
    expect(body.name).toBe(row!.name);
    expect(body.events).toHaveLength(1 + row!.updates);
  });

  it('keeps answering, not degraded, when one of two quotes instances dies; degraded with the fallback when both do; whole again when one returns', async () => {
    await kill('quotes-1');
    const during = await Promise.all(Array.from({ length: 30 }, () => read(account)));
    for (const r of during) {
      expect(r.status).toBe(200);
      expect(r.body.degraded).toBeUndefined();
      expect(r.body.servedBy.quote).toBe('quotes-2');
    }
    await vi.waitFor(
      async () => {
        const ready = (await (await fetch(`${gw()}/readyz`)).json()) as {
          dependencies: { quotes: Array<{ inRotation: boolean }> };
        };
        expect(ready.dependencies.quotes.map((q) => q.inRotation)).toEqual([false, true]);
      },
      { timeout: 10_000, interval: 100 },
    );

    await kill('quotes-2');
    const without = await Promise.all(Array.from({ length: 30 }, () => read(account)));
    for (const r of without) {
      expect(r.status).toBe(200);
      expect(r.body.degraded).toEqual(['quotes']);
      expect(r.body.quote.ipAddress).toBe('fallback');
      expect(r.body.servedBy.quote).toBeUndefined();
      expect(r.body.imageData).toEqual({ url: 'https://img.example/split.png' });
    }

    await start('quotes-1', { ROLE: 'quotes' });
    await vi.waitFor(
      async () => {
        const r = await read(account);
        expect(r.body.degraded).toBeUndefined();
        expect(r.body.servedBy.quote).toBe('quotes-1');
      },
      { timeout: 10_000, interval: 100 },
    );
    await start('quotes-2', { ROLE: 'quotes' });
  });

  it('answers without the image when images is down, and 503 with Retry-After when accounts-data is', async () => {
    await kill('images-1');
    for (const r of await Promise.all(Array.from({ length: 10 }, () => read(account)))) {
      expect(r.status).toBe(200);
      expect(r.body.imageData).toBeNull();
      expect(r.body.degraded).toEqual(['images']);
    }
    await kill('data-1');
    const res = await fetch(`${gw()}/accounts/${account}`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { code: string }).code).toBe('DEPENDENCY.UNAVAILABLE');
    await vi.waitFor(async () => expect((await fetch(`${gw()}/readyz`)).status).toBe(503), { timeout: 10_000 });

    await start('data-1', { ROLE: 'accounts-data' });
    await start('images-1', { ROLE: 'images', ACCOUNTS_DATA_URLS: running['data-1']!.url });
    await vi.waitFor(
      async () => {
        const r = await read(account);
        expect(r.status).toBe(200);
        expect(r.body.degraded).toBeUndefined();
      },
      { timeout: 15_000, interval: 200 },
    );
  });
});
