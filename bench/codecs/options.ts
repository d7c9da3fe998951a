import { EVENT_ENCODINGS, type EventEncoding } from '../../src/platform/messaging/codec/event-codec.ts';
import { UsageError } from '../users/options.ts';

export interface CodecsBenchOptions {
  /** Timed micro samples per event type and encoding. */
  rounds: number;
  /** Length of one micro sample, ms. */
  sampleMs: number;
  /** Offered outbox events per second end to end. */
  rate: number;
  /** Seconds of load per encoding end to end. */
  durationSeconds: number;
  /** End-to-end runs per encoding, the order of the encodings rotating from one to the next. */
  e2eRounds: number;
  /** Outbox events per business transaction. */
  eventsPerTx: number;
  /** false: the micro benchmark only (no PostgreSQL, no RabbitMQ). */
  e2e: boolean;
  /** The encodings run end to end, JSON always among them (the ratios' baseline). */
  e2eEncodings: EventEncoding[];
}

export const CODECS_USAGE =
  'usage: npm run bench -- codecs [--rounds 15] [--sample-ms 150] [--rate 5000] [--duration 10] ' +
  '[--e2e-rounds 3] [--events-per-tx 10] [--e2e-encodings json,msgpack,protobuf] [--no-e2e]';

/**
 * Ten events per transaction, as in the messaging benchmark: 5,000 commits a second of one event each is more
 * than PostgreSQL does on 2 cores beside the relay, RabbitMQ and the consumer.
 */
const DEFAULTS: CodecsBenchOptions = {
  rounds: 15,
  sampleMs: 150,
  rate: 5000,
  durationSeconds: 10,
  e2eRounds: 3,
  eventsPerTx: 10,
  e2e: true,
  e2eEncodings: [...EVENT_ENCODINGS],
};

/** Reads the flags (also `--name=value`); throws UsageError with the usage line otherwise. */
export function parseCodecsOptions(argv: readonly string[]): CodecsBenchOptions {
  const options = { ...DEFAULTS };
  const args = argv.flatMap((a) =>
    a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a],
  );
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === '--no-e2e') {
      options.e2e = false;
      i--;
    } else if (flag === '--rounds' && value) options.rounds = positiveInt(value, flag);
    else if (flag === '--sample-ms' && value) options.sampleMs = positiveInt(value, flag);
    else if (flag === '--rate' && value) options.rate = positiveInt(value, flag);
    else if (flag === '--duration' && value) options.durationSeconds = positiveInt(value, flag);
    else if (flag === '--e2e-rounds' && value) options.e2eRounds = positiveInt(value, flag);
    else if (flag === '--events-per-tx' && value) options.eventsPerTx = positiveInt(value, flag);
    else if (flag === '--e2e-encodings' && value) options.e2eEncodings = encodings(value);
    else throw new UsageError(`unknown or incomplete argument "${flag}"\n${CODECS_USAGE}`);
  }
  return options;
}

function encodings(raw: string): EventEncoding[] {
  const list = raw.split(',').map((s) => s.trim() as EventEncoding);
  const wrong = list.find((e) => !EVENT_ENCODINGS.includes(e));
  if (wrong !== undefined)
    throw new UsageError(`--e2e-encodings takes ${EVENT_ENCODINGS.join(', ')}, got "${wrong}"\n${CODECS_USAGE}`);
  return EVENT_ENCODINGS.filter((e) => e === 'json' || list.includes(e));
}

function positiveInt(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new UsageError(`${flag} takes whole numbers of at least 1, got "${raw}"\n${CODECS_USAGE}`);
  return Number(raw);
}
