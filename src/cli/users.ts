import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import type { Config } from '../config/config.ts';
import { COMPACTION_BATCH, compactScores, scoreLogStatus } from '../contexts/users/deferred-scores.ts';
import { openDatabase } from '../app/database.ts';
import { createPool } from '../platform/db/connect.ts';

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const USERS_HELP = `usage: stratum users compact [--batch N]
       stratum users status

compact: folds the score log of SCORE_MODE=deferred into the stored scores, N users per statement (default
${COMPACTION_BATCH}), with a progress bar on a terminal, then trims the log. Creations and reads go on meanwhile;
stopped anywhere, every read stays right and the next run carries on. One compaction at a time: a second one
says so and exits 3. Applies pending migrations first.
status: the log's length, its lag and the async fan-outs still pending.`;

/** `stratum users compact|status`. */
export async function runUsers(config: Config, args: string[], io: Io): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: false,
    options: { batch: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const batch = Number(values.batch ?? COMPACTION_BATCH);
  const action = positionals[0];
  if (values.help) {
    io.out(USERS_HELP);
    return 0;
  }
  if ((action !== 'compact' && action !== 'status') || !Number.isSafeInteger(batch) || batch < 1 || batch > 1_000_000) {
    io.err(USERS_HELP);
    return 2;
  }
  const database = await openDatabase(config, 'command', (line) => io.err(`stratum: ${line}`));
  // Its own connection, without the request pools' statement timeout: a batch may take long on a big table.
  const sql = createPool(database.target, {
    max: 1,
    applicationName: `${database.applicationName}-compaction`,
    name: 'users-compaction',
    statementTimeoutMs: 0,
  });
  try {
    await database.migrator.up();
    const before = await scoreLogStatus(sql);
    const describe = (s: typeof before) =>
      `score log: ${s.lag} creations pending (head ${s.head}, compacted through ${s.oldest}), lag ${s.lagSeconds.toFixed(1)} s, ${s.pendingFanouts} async fan-outs pending`;
    if (action === 'status') {
      io.out(describe(before));
      return 0;
    }
    const bar = process.stderr.isTTY
      ? new cliProgress.SingleBar(
          {
            format:
              'compacting scores [{bar}] {percentage}% ids {value}/{total} {moved} users moved {duration_formatted}',
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    const began = Date.now();
    let started = false;
    const result = await compactScores(sql, {
      batchSize: batch,
      onProgress: (p) => {
        if (!started) bar?.start(p.lastId, 0, { moved: 0 });
        started = true;
        bar?.update(p.doneThroughId, { moved: p.moved });
      },
    }).finally(() => bar?.stop());
    const seconds = ((Date.now() - began) / 1000).toFixed(1);
    switch (result.outcome) {
      case 'busy':
        io.err(`stratum: not compacted: ${result.reason}`);
        return 3;
      case 'nothing pending':
        io.out(`nothing to compact: every stored score is current (log index ${result.target})`);
        return 0;
      case 'compacted':
        io.out(
          `compacted through log index ${result.target}: ${result.moved} users moved in ${result.batches} batches, ` +
            `${result.trimmed} log rows trimmed (${seconds} s)`,
        );
        io.out(describe(await scoreLogStatus(sql)));
        return 0;
    }
  } finally {
    await sql.end({ timeout: 5 });
    await database.close();
  }
}
