import { parseArgs } from 'node:util';
import { isScenarioName, SCENARIO_NAMES, type ScenarioName } from './scenarios.ts';

export const USAGE = `usage: npm run tools -- loadtest <${SCENARIO_NAMES.join('|')}> --url URL --rate REQ_PER_S --duration S [--ramp S] [--accounts N] [--customers N] [--seed N] [--json FILE] [--html FILE | --no-html] [--max-in-flight N] [--timeout S] [--concurrency N] [--database-url URL] [--deadline-ms MS] [--settle S]`;

export const HELP = `${USAGE}

Drives an open-model load (a fixed arrival rate) against a running stratum and prints what came of it: while it
runs, a progress line on stderr (sent, answered, errors, p99 of the last 5 s); at the end, the report and an HTML
report with throughput, latency percentiles and status codes per second.
  accounts-read    GET /accounts/:id of random seeded accounts (the source ran --rate 50 --duration 75 --ramp 5)
  accounts-mixed   ~70% reads, 15% POST /accounts, 10% PUT /accounts/:id, 5% name-prefix queries; then every
                   created account is read back and a missing one is reported as lost
  orders-mixed     ~40% GET /orders/:id of orders the run created, 25% POST /orders for a random customer
                   (1 or 2 items), 25% PATCH /orders/:id to the next status (pending → processing → completed;
                   never two changes of one order in flight), 10% GET /orders?customerId= of a random customer;
                   a read or change with no order to address yet is a creation. Then every created order is
                   read back by id and in its customer's listing: it must be found exactly once with the last
                   status acknowledged (either status after a change that failed); lost orders, orders in a
                   wrong state and duplicates are reported
  orders-contention  bursts of --concurrency requests at once on a hot set of a few orders and customers
                   (2 per shard): creations, status changes, transfers across and within shards, checkouts
                   (paid, declined, timing out), CSV imports and reads. Prints per route the count, status
                   codes, p50/p99/max, then checks: every request answered, no 5xx but 503 with Retry-After,
                   none later than --deadline-ms + 250 ms; after the load (up to --settle s) no prepared
                   transaction, unfinished saga or decision without branches; every order once on its shard
                   with its items, owned by its last acknowledged customer, in a status its acknowledged
                   changes allow, with the items imported; stock never below zero; charges = completed
                   checkouts; then a fresh POST /orders answers 201 within 1 s. Needs --database-url

  --url            base URL of the service, e.g. http://127.0.0.1:8080
  --rate           arrivals per second after the ramp
  --duration       seconds of the whole run, ramp included
  --ramp           seconds to climb linearly from 0 to --rate (default 0)
  --accounts       seeded accounts to address, Person_0 .. Person_<N-1> (default 15000)
  --customers      orders-mixed: customers to create orders for and list, 1 .. N (default 1000)
  --seed           seed of the random choices, for a reproducible run (default 1)
  --json           also write the report as JSON to this file
  --html           write the HTML report (charts per second, tables; one file, opens offline) to this file
                   (default: beside --json as .html, else loadtest-<scenario>-<yyyymmdd-hhmmss>.html here)
  --no-html        write no HTML report
  --max-in-flight  requests in flight at once; arrivals beyond it fail as CLIENT.OVERLOADED (default 1000)
  --timeout        seconds a request may take before it fails as CLIENT.TIMEOUT (default 10)
  --concurrency    arrivals released at once, in bursts at the average --rate (default 1; orders-contention 32)
  --database-url   orders-contention: the catalog (main) database of the server under load
  --deadline-ms    orders-contention: the server's TX_DEADLINE_MS (default 2000)
  --settle         orders-contention: seconds to wait after the load for a clean state (default 30)

Exit code: 0 when every request succeeded and everything created was read back as left (nothing lost,
in a wrong state, duplicated or unverifiable), 1 otherwise, 2 for bad arguments.`;

export interface LoadtestOptions {
  scenario: ScenarioName;
  url: URL;
  rate: number;
  duration: number;
  ramp: number;
  accounts: number;
  customers: number;
  seed: number;
  json: string | undefined;
  /** Where the HTML report goes (--html); see htmlReportPath. */
  html: string | undefined;
  noHtml: boolean;
  maxInFlight: number;
  timeoutS: number;
  /** Arrivals released together. */
  concurrency: number;
  databaseUrl: string | undefined;
  deadlineMs: number;
  settleS: number;
}

export type ParsedArgs =
  { kind: 'options'; options: LoadtestOptions } | { kind: 'help' } | { kind: 'invalid'; message: string };

class ArgumentError extends Error {}

function numberOption(
  raw: string | undefined,
  name: string,
  fallback: number | undefined,
  check: (n: number) => boolean,
  rule: string,
): number {
  if (raw === undefined) {
    if (fallback === undefined) throw new ArgumentError(`--${name} is required`);
    return fallback;
  }
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || !check(n))
    throw new ArgumentError(`--${name} must be ${rule}, got "${raw}"`);
  return n;
}

// GET /orders?customerId= takes at most 15 digits.
const MAX_CUSTOMER_ID = 999_999_999_999_999;
const SCENARIO_LIST = `${SCENARIO_NAMES.slice(0, -1).join(', ')} or ${SCENARIO_NAMES.at(-1)}`;

const positive = (n: number) => n > 0;
const positiveInt = (n: number) => Number.isInteger(n) && n > 0;

function parseUrl(raw: string | undefined): URL {
  if (raw === undefined) throw new ArgumentError('--url is required');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ArgumentError(`--url must be an http(s) URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ArgumentError(`--url must be an http(s) URL, got "${raw}"`);
  if (url.search || url.hash) throw new ArgumentError(`--url must not carry a query or fragment, got "${raw}"`);
  return url;
}

/**
 * Reads `loadtest` arguments into options, or says in one line what is wrong with them.
 * @example parseLoadtestArgs(['accounts-read', '--url', 'http://127.0.0.1:8080', '--rate', '50', '--duration', '75', '--ramp', '5'])
 */
export function parseLoadtestArgs(args: string[]): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        url: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        ramp: { type: 'string' },
        accounts: { type: 'string' },
        customers: { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'string' },
        html: { type: 'string' },
        'no-html': { type: 'boolean' },
        'max-in-flight': { type: 'string' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        concurrency: { type: 'string' },
        'database-url': { type: 'string' },
        'deadline-ms': { type: 'string' },
        settle: { type: 'string' },
      },
    });
    if (values.help) return { kind: 'help' };
    const [scenario, ...extra] = positionals;
    if (scenario === undefined) throw new ArgumentError(`a scenario is required: ${SCENARIO_LIST}`);
    if (!isScenarioName(scenario)) throw new ArgumentError(`unknown scenario "${scenario}": use ${SCENARIO_LIST}`);
    if (extra.length > 0) throw new ArgumentError(`unexpected argument "${extra[0]}"`);
    if (values.html !== undefined && values['no-html'])
      throw new ArgumentError('--html and --no-html exclude each other');
    const url = parseUrl(values.url);
    const rate = numberOption(values.rate, 'rate', undefined, positive, 'a positive number');
    const duration = numberOption(values.duration, 'duration', undefined, positive, 'a positive number of seconds');
    const ramp = numberOption(values.ramp, 'ramp', 0, (n) => n >= 0, 'zero or more seconds');
    if (ramp > duration)
      throw new ArgumentError(`--ramp (${ramp} s) must not be longer than --duration (${duration} s)`);
    const databaseUrl = values['database-url'];
    if (scenario === 'orders-contention' && databaseUrl === undefined) {
      throw new ArgumentError(
        'orders-contention needs --database-url: the catalog database it checks every shard through',
      );
    }
    if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//i.test(databaseUrl))
      throw new ArgumentError('--database-url must be a postgres:// URL');
    return {
      kind: 'options',
      options: {
        scenario,
        url,
        rate,
        duration,
        ramp,
        accounts: numberOption(values.accounts, 'accounts', 15_000, positiveInt, 'a positive integer'),
        customers: numberOption(
          values.customers,
          'customers',
          1_000,
          (n) => positiveInt(n) && n <= MAX_CUSTOMER_ID,
          `an integer in 1..${MAX_CUSTOMER_ID}`,
        ),
        seed: numberOption(
          values.seed,
          'seed',
          1,
          (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32,
          'an integer in [0, 2^32)',
        ),
        json: values.json,
        html: values.html,
        noHtml: values['no-html'] ?? false,
        maxInFlight: numberOption(values['max-in-flight'], 'max-in-flight', 1_000, positiveInt, 'a positive integer'),
        timeoutS: numberOption(values.timeout, 'timeout', 10, positive, 'a positive number of seconds'),
        concurrency: numberOption(
          values.concurrency,
          'concurrency',
          scenario === 'orders-contention' ? 32 : 1,
          positiveInt,
          'a positive integer',
        ),
        databaseUrl,
        deadlineMs: numberOption(
          values['deadline-ms'],
          'deadline-ms',
          2_000,
          positiveInt,
          'a positive whole number of milliseconds',
        ),
        settleS: numberOption(values.settle, 'settle', 30, (n) => n >= 0, 'zero or more seconds'),
      },
    };
  } catch (error) {
    // parseArgs throws TypeErrors with codes for unknown options and missing values; both are usage errors.
    if (error instanceof ArgumentError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      return { kind: 'invalid', message: (error as Error).message };
    }
    throw error;
  }
}
