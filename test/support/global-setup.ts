import type { TestProject } from 'vitest/node';
import postgres from 'postgres';
import { createMainMigrator } from '../../src/app/migrations.ts';
import { openEmbedded, type EmbeddedServer } from '../../src/platform/db/embedded/embedded-server.ts';
import { childEnv } from '../../src/config/config.ts';
import type { AdminTarget } from './db.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    dbAdmin: AdminTarget;
  }
}

/**
 * One PostgreSQL for the whole run: the machine's when DATABASE_URL is set (CI's external mode), else an
 * embedded server under .stratum-test/. A template database is built by the real migrations; each test
 * file clones it.
 */
export default async function setup(project: TestProject) {
  let embedded: EmbeddedServer | undefined;
  let admin: AdminTarget;
  const external = process.env.DATABASE_URL;
  if (external) {
    admin = { url: external, mode: 'external' };
  } else {
    embedded = await openEmbedded({
      home: '.stratum-test',
      role: 'serve',
      env: childEnv(process.env),
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '300' },
    });
    const t = embedded.target;
    admin = {
      url: `postgres://${t.user}:${encodeURIComponent(t.password ?? '')}@${t.host}:${t.port}/${t.database}`,
      mode: 'embedded',
    };
  }
  const template = `stratum_tpl_${process.pid}`;
  const sql = postgres(admin.url, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop database if exists ${template} with (force)`);
  await sql.unsafe(`create database ${template}`);
  const tplSql = postgres(withDatabase(admin.url, template), { max: 2, onnotice: () => {} });
  await createMainMigrator(tplSql as never).up();
  await tplSql.end();
  project.provide('dbAdmin', { ...admin, template });
  console.log(
    `[stratum tests] PostgreSQL: ${admin.mode === 'external' ? `external (${redact(admin.url)})` : 'embedded (.stratum-test)'}`,
  );
  return async () => {
    await sql.unsafe(`drop database if exists ${template} with (force)`).catch(() => {});
    await sql.end();
    await embedded?.release();
  };
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
