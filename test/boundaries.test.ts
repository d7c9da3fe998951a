import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTEXTS } from '../src/app/contexts.ts';
import { mergeErrorTables, PLATFORM_ERRORS } from '../src/http/error-statuses.ts';

const root = path.resolve(import.meta.dirname, '..');

function filesUnder(dir: string, ext: RegExp): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && ext.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

/** What only a context may name: its role, its error codes, its events, its tables. */
function contextNames(): Array<{ context: string; name: string }> {
  const names: Array<{ context: string; name: string }> = [];
  for (const context of CONTEXTS) {
    const add = (name: string) => names.push({ context: context.name, name });
    if (context.role) add(context.role.name);
    for (const code of Object.keys(context.errors)) if (!(code in PLATFORM_ERRORS)) add(code);
    for (const event of context.events) add(event.name);
    for (const m of [...(context.migrations?.() ?? []), ...(context.shardMigrations?.() ?? [])]) {
      for (const [, table] of m.up.matchAll(/create table (?:if not exists )?([a-z_]+\.[a-z_]+)/g)) add(table!);
    }
  }
  return names;
}

describe('the platform names no context', () => {
  it('mentions no context role, error code, event or table anywhere under src/platform', () => {
    const names = contextNames();
    expect(names.length).toBeGreaterThan(20);
    const found: string[] = [];
    for (const file of filesUnder(path.join(root, 'src/platform'), /\.(ts|sql)$/)) {
      const text = fs.readFileSync(file, 'utf8');
      for (const { context, name } of names) {
        if (new RegExp(`(^|[^a-z_.])${name.replace(/\./g, '\\.')}($|[^a-z_])`, 'i').test(text)) {
          found.push(`${path.relative(root, file)} names ${context}'s ${name}`);
        }
      }
    }
    expect(found).toEqual([]);
  });
});

describe('error codes', () => {
  it('gives every code thrown under src/ one HTTP status in the merged table', () => {
    const table = mergeErrorTables([PLATFORM_ERRORS, ...CONTEXTS.map((c) => c.errors)]);
    const missing: string[] = [];
    for (const file of filesUnder(path.join(root, 'src'), /\.ts$/)) {
      for (const [, code] of fs.readFileSync(file, 'utf8').matchAll(/new AppError\(\s*'([A-Z_.]+)'/g)) {
        if (!(code! in table)) missing.push(`${path.relative(root, file)}: ${code}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('refuses two statuses for one code', () => {
    expect(() => mergeErrorTables([{ 'A.B': { status: 404 } }, { 'A.B': { status: 409 } }])).toThrow(
      /A\.B is given two statuses/,
    );
    expect(() => mergeErrorTables([{ 'lower.case': { status: 400 } }])).toThrow(/AREA\.REASON/);
  });
});
