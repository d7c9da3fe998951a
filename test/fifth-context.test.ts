import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openContextPools, type ContextPools } from '../src/app/context-pools.ts';
import { CONTEXTS } from '../src/app/contexts.ts';
import { createMainMigrator } from '../src/app/migrations.ts';
import { assembleServices, type Services } from '../src/app/services.ts';
import { loadConfig } from '../src/config/config.ts';
import { passwordOfUrl } from '../src/platform/db/connect.ts';
import { notesModule } from './fixtures/notes-context/module.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { eventuallyAsync } from './messaging/contract.ts';

/**
 * A context added the way a user of stratum adds one: its own folder (test/fixtures/notes-context) and one more
 * entry in the root's list. Its migrations run with the others, its role gets the outbox and consumer rights from
 * its descriptor, its routes, error codes, events and consumer work without a change anywhere else.
 */
describe('a fifth context', () => {
  const contexts = [...CONTEXTS, notesModule];
  let db: TestDatabase;
  let pools: ContextPools;
  let services: Services;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createMainMigrator(db.sql, { contexts }).up();
    const config = loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent' }, process.cwd());
    pools = await openContextPools({
      admin: db.sql,
      target: { url: db.url },
      adminSecret: passwordOfUrl(db.url),
      passwords: {},
      poolMax: 2,
      applicationName: db.applicationName,
      contexts,
    });
    services = await assembleServices(config, {
      admin: db.sql,
      target: { url: db.url },
      pools,
      applicationName: db.applicationName,
      contexts,
    });
  });
  afterAll(async () => {
    await services?.close();
    await pools?.end();
    await db?.drop();
  });

  it('runs on its own role, publishes its typed event, and its consumer applies it once', async () => {
    expect((await pools.own.notes!`select current_user as u`)[0]!.u).toBe('stratum_notes');
    const created = await services.app.inject({
      method: 'POST',
      url: '/notes',
      payload: { title: 'three short words' },
    });
    expect(created.statusCode).toBe(201);
    const { id } = created.json() as { id: number };
    const note = await eventuallyAsync(
      async () => (await services.app.inject({ method: 'GET', url: `/notes/${id}` })).json() as { words: number },
      (n) => n.words === 3,
      'the consumer to count the words',
    );
    expect(note).toEqual({ id, title: 'three short words', words: 3 });
    expect(
      (
        await db.sql`select count(*)::int as n from messaging.processed_messages where consumer_group = 'notes.word-count'`
      )[0]!.n,
    ).toBe(1);
  });

  it('answers its own error code with the status its descriptor gives', async () => {
    const missing = await services.app.inject({ method: 'GET', url: '/notes/999999' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: 'NOTE.NOT_FOUND' });
  });

  it("cannot read another context's schema", async () => {
    await expect(pools.own.notes!`select * from accounts.accounts`).rejects.toMatchObject({ code: '42501' });
  });
});
