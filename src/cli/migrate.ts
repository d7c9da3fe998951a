import type { Config } from '../config/config.ts';
import { openDatabase } from '../main.ts';

interface Io { out: (line: string) => void; err: (line: string) => void }

/** `stratum migrate up | down [n] | status` */
export async function runMigrate(config: Config, args: string[], io: Io): Promise<number> {
  const [action, countArg] = args;
  if (action !== 'up' && action !== 'down' && action !== 'status') {
    io.err('usage: stratum migrate up | down [n] | status');
    return 2;
  }
  let count = 1;
  if (action === 'down' && countArg !== undefined) {
    if (!/^\d+$/.test(countArg) || Number(countArg) < 1) {
      io.err(`stratum: migrate down takes a positive count, got "${countArg}"`);
      return 2;
    }
    count = Number(countArg);
  }
  const database = await openDatabase(config, 'command', (line) => io.err(`stratum: ${line}`));
  try {
    if (action === 'up') {
      const applied = await database.migrator.up();
      io.out(applied.length === 0 ? 'nothing to apply: the schema is up to date' : applied.map((m) => `applied ${m.context}/${m.version} ${m.name}`).join('\n'));
    } else if (action === 'down') {
      const reverted = await database.migrator.down(count);
      io.out(reverted.length === 0 ? 'nothing to revert' : reverted.map((m) => `reverted ${m.context}/${m.version} ${m.name}`).join('\n'));
    } else {
      for (const s of await database.migrator.status()) {
        io.out(`${s.state.padEnd(8)} ${s.context}/${String(s.version).padStart(4, '0')} ${s.name}${s.appliedAt ? `  (${s.appliedAt.toISOString()})` : ''}`);
      }
    }
    return 0;
  } finally {
    await database.close();
  }
}
