import { parseArgs } from 'node:util';
import type { Config } from '../config/config.ts';
import { openDatabase } from '../app/database.ts';
import { openBroker } from '../app/messaging.ts';
import { pino } from 'pino';

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const DLQ_HELP = `usage: stratum dlq list --group G [--limit N]
       stratum dlq show|replay|drop --group G --id ID

Dead letters of a consumer group on the configured broker (BROKER, BROKER_URL): events whose handler failed
maxAttempts times, with the last error. replay publishes the event again to that group only.`;

/** `stratum dlq list|show|replay|drop --group G [--id ID]` */
export async function runDlq(config: Config, args: string[], io: Io): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: false,
    options: {
      group: { type: 'string' },
      id: { type: 'string' },
      limit: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.out(DLQ_HELP);
    return 0;
  }
  const action = positionals[0];
  const group = typeof values.group === 'string' ? values.group : undefined;
  const id = typeof values.id === 'string' ? values.id : undefined;
  const limit = Number(values.limit ?? 100);
  if (
    !['list', 'show', 'replay', 'drop'].includes(action ?? '') ||
    !group ||
    (action !== 'list' && !id) ||
    !Number.isSafeInteger(limit) ||
    limit < 1
  ) {
    io.err(DLQ_HELP);
    return 2;
  }
  const database = await openDatabase(config, 'command', (line) => io.err(`stratum: ${line}`));
  const broker = await openBroker(config, database.sql, pino({ level: 'silent' }));
  try {
    const letters = broker.deadLetters;
    if (action === 'list') {
      for (const l of await letters.list(group, limit))
        io.out(`${l.id}  ${l.deadAt}  ${l.event.type}  key=${l.event.key}  attempts=${l.attempts}  ${l.error}`);
      return 0;
    }
    if (action === 'show') {
      const letter = await letters.get(group, id!);
      if (!letter) {
        io.err(`stratum: no dead letter ${id} in group ${group}`);
        return 1;
      }
      io.out(JSON.stringify(letter, null, 2));
      return 0;
    }
    const done = action === 'replay' ? await letters.replay(group, id!) : await letters.drop(group, id!);
    if (!done) {
      io.err(`stratum: no dead letter ${id} in group ${group}`);
      return 1;
    }
    io.out(`${action === 'replay' ? 'replayed' : 'dropped'} ${id}`);
    return 0;
  } finally {
    await broker.close();
    await database.close();
  }
}
