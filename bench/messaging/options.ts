import { UsageError } from '../users/options.ts';

export type BrokerName = 'postgres' | 'rabbitmq' | 'nats' | 'redis';

export const BROKER_NAMES: readonly BrokerName[] = ['postgres', 'rabbitmq', 'nats', 'redis'];

export interface MessagingBenchOptions {
  /** Seconds of load per broker and rate. */
  durationSeconds: number;
  /** Offered rates, events per second, run in this order on each broker. */
  rates: number[];
  brokers: BrokerName[];
  /** Outbox events written per business transaction. */
  eventsPerTx: number;
  /** How the producer writes them: `all` in one addAllToOutbox statement, `each` with one addToOutbox per event. */
  add: ProducerAdd;
  /** consume()'s transactionsAtOnce: handler transactions open at once (each holds a database connection). */
  transactionsAtOnce: number;
}

export type ProducerAdd = 'all' | 'each';

export const MESSAGING_USAGE =
  'usage: npm run bench -- messaging [--duration 30] [--rates 1000,5000] ' +
  '[--brokers postgres,rabbitmq,nats,redis] [--events-per-tx 10] [--add all|each] [--transactions-at-once 2]';

/**
 * Ten events per transaction by default: 5,000 transactions a second, each with its own commit, is more than
 * PostgreSQL does on 2 cores next to everything else here (with --events-per-tx 1 about 1,400-2,000 commit a
 * second; 1,000 a second is fine now that writers NOTIFY only while the relay sleeps).
 */
const DEFAULTS: MessagingBenchOptions = {
  durationSeconds: 30,
  rates: [1000, 5000],
  brokers: [...BROKER_NAMES],
  eventsPerTx: 10,
  add: 'all',
  transactionsAtOnce: 2,
};

/** Reads the flags (also `--name=value`); throws UsageError with the usage line otherwise. */
export function parseMessagingOptions(argv: readonly string[]): MessagingBenchOptions {
  const options = { ...DEFAULTS };
  const args = argv.flatMap((a) =>
    a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a],
  );
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === '--duration' && value) options.durationSeconds = positiveInt(value, flag);
    else if (flag === '--rates' && value) options.rates = value.split(',').map((s) => positiveInt(s, flag));
    else if (flag === '--brokers' && value) options.brokers = value.split(',').map(brokerName);
    else if (flag === '--events-per-tx' && value) options.eventsPerTx = positiveInt(value, flag);
    else if (flag === '--add' && (value === 'all' || value === 'each')) options.add = value;
    else if (flag === '--transactions-at-once' && value) options.transactionsAtOnce = positiveInt(value, flag);
    else throw new UsageError(`unknown or incomplete argument "${flag}"\n${MESSAGING_USAGE}`);
  }
  return options;
}

function brokerName(raw: string): BrokerName {
  const name = raw.trim() as BrokerName;
  if (!BROKER_NAMES.includes(name))
    throw new UsageError(`--brokers takes ${BROKER_NAMES.join(', ')}, got "${raw}"\n${MESSAGING_USAGE}`);
  return name;
}

function positiveInt(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new UsageError(`${flag} takes whole numbers of at least 1, got "${raw}"\n${MESSAGING_USAGE}`);
  return Number(raw);
}
