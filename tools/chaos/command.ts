import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Config } from '../../src/config/config.ts';
import type { ToolsConfig } from '../../src/config/tools-config.ts';
import { htmlReportPath, writeHtmlReport } from '../loadtest/html-report.ts';
import { progressOutput, type ProgressOutput } from '../loadtest/progress.ts';
import { printBrokerReport, runBrokerChaos } from './broker-chaos.ts';
import { brokerPage, failoverPage } from './chaos-pages.ts';
import { printFailoverReport, runFailoverChaos, type FailoverFault } from './failover-chaos.ts';

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Where the live progress line goes; by default stderr when it is a terminal, else `err` every 5 s. */
  progress?: ProgressOutput;
}

export const CHAOS_USAGE = `usage: npm run tools -- chaos failover --scenario accounts-mixed --rate N --duration S --fault kill-leader|kill-postgres|switchover@SECONDS [--url URL] [--json FILE] [--html FILE | --no-html]
       npm run tools -- chaos broker --broker rabbitmq|nats --fault stop@SECONDS --for SECONDS [--rate N] [--duration S] [--json FILE] [--html FILE | --no-html]`;

export const CHAOS_HELP = `${CHAOS_USAGE}

  chaos failover the accounts-mixed load (creations with Idempotency-Keys) against a running stratum on the lab
                 cluster (\`npm run tools -- lab up\`), the lab fault applied at its time, then every acknowledged creation
                 looked up on the primary that serves afterwards (DATABASE_URL, the lab's multi-host URL) and read
                 back through the API. Prints requests sent, failed (by code), acknowledged writes missing, the
                 longest latency and the write stall.
    --url            the running stratum (default http://127.0.0.1:8080)
    --accounts       seeded accounts the reads and renames address (default 15000; \`stratum seed accounts\`)
    --timeout        seconds a request may take (default 30)

  chaos broker   events through the outbox, the relay and the broker to a consumer with exactly-once effects,
                 at --rate events/s for --duration s (default 100, 60); the broker is stopped at the --fault time
                 for --for seconds and started again. Prints events committed, published, applied, lost and
                 duplicated effects. Runs in a database of its own (<main database>_chaos).
    --broker         rabbitmq or nats (BROKER_URL, or the machine's default port)
    --stop-command   how to stop the broker (default: rabbitmqctl stop_app; start-stop-daemon for nats-server)
    --start-command  how to start it again
    --drain          seconds to wait for the consumer to catch up after the load (default 120)

  Both print a progress line on stderr while the load runs (sent, answered, errors, p99 of the last 5 s) and write
  an HTML report at the end: throughput, latency percentiles and status codes per second with the fault window
  shaded, and the failed, retried and missing counts; one file that opens offline.
    --json           also write the report as JSON to this file
    --html           the HTML report's file (default: beside --json as .html, else
                     chaos-failover-<fault>-<yyyymmdd-hhmmss>.html or chaos-broker-<broker>-<…>.html here)
    --no-html        write no HTML report

Exit code: 0 when nothing was lost or applied twice, 1 otherwise, 2 for bad arguments.`;

function positiveNumber(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--${name} must be a positive number, got "${raw}"`);
  return value;
}

class UsageError extends Error {}

/**
 * `npm run tools -- chaos failover|broker ...`. `serviceConfig` loads the service's configuration, which broker
 * chaos runs in (its main database); a failover run does not need it.
 */
export async function runChaos(
  args: string[],
  io: Io,
  settings: ToolsConfig,
  serviceConfig: () => Config,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        broker: { type: 'string' },
        fault: { type: 'string' },
        for: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        json: { type: 'string' },
        html: { type: 'string' },
        'no-html': { type: 'boolean' },
        scenario: { type: 'string' },
        url: { type: 'string' },
        accounts: { type: 'string' },
        timeout: { type: 'string' },
        'stop-command': { type: 'string' },
        'start-command': { type: 'string' },
        drain: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    io.err(`chaos: ${(error as Error).message}`);
    io.err(CHAOS_USAGE);
    return 2;
  }
  if (parsed.values.help) {
    io.out(CHAOS_HELP);
    return 0;
  }
  const [kind, ...extra] = parsed.positionals;
  const { json, html } = parsed.values;
  const noHtml = parsed.values['no-html'] ?? false;
  const writeHtml = async (base: string, page: Parameters<typeof writeHtmlReport>[1]) => {
    const file = htmlReportPath({ json, html, noHtml }, base);
    if (!file) return;
    await writeHtmlReport(file, page);
    io.out(`HTML report: ${file}`);
  };
  try {
    if ((kind !== 'broker' && kind !== 'failover') || extra.length > 0)
      throw new UsageError('the chaos to run is `failover` or `broker`');
    if (html !== undefined && noHtml) throw new UsageError('--html and --no-html exclude each other');
    if (kind === 'failover') {
      if ((parsed.values.scenario ?? 'accounts-mixed') !== 'accounts-mixed')
        throw new UsageError('--scenario must be accounts-mixed');
      const fault = /^(kill-leader|kill-postgres|switchover)@(\d+(?:\.\d+)?)$/.exec(parsed.values.fault ?? '');
      if (!fault) throw new UsageError('--fault must be kill-leader@S, kill-postgres@S or switchover@S');
      const duration = positiveNumber(parsed.values.duration, 'duration', 60);
      if (Number(fault[2]) >= duration) throw new UsageError('the fault must come before the end of --duration');
      const databaseUrl = settings.chaos.clusterUrl;
      if (!databaseUrl)
        throw new UsageError('DATABASE_URL must name the lab cluster (printed by `npm run tools -- lab up`)');
      let url: URL;
      try {
        url = new URL(parsed.values.url ?? 'http://127.0.0.1:8080');
      } catch {
        throw new UsageError('--url must be a URL');
      }
      const run = await runFailoverChaos(
        {
          url,
          rate: positiveNumber(parsed.values.rate, 'rate', 100),
          duration,
          fault: fault[1] as FailoverFault,
          faultAt: Number(fault[2]),
          databaseUrl,
          accounts: positiveNumber(parsed.values.accounts, 'accounts', 15000),
          timeoutS: positiveNumber(parsed.values.timeout, 'timeout', 30),
          lab: settings.lab,
        },
        io.err,
        progressOutput(io),
      );
      const report = run.report;
      printFailoverReport(report, io.out);
      if (json) fs.writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
      await writeHtml(`chaos-failover-${report.fault}`, failoverPage(run, url.toString()));
      return report.requestsFailed === 0 && report.acknowledgedWritesMissing === 0 && report.readBackLost === 0 ? 0 : 1;
    }
    const broker = parsed.values.broker;
    if (broker !== 'rabbitmq' && broker !== 'nats') throw new UsageError('--broker must be rabbitmq or nats');
    const fault = /^stop@(\d+(?:\.\d+)?)$/.exec(parsed.values.fault ?? '');
    if (!fault) throw new UsageError('--fault must be stop@SECONDS');
    const duration = positiveNumber(parsed.values.duration, 'duration', 60);
    const stopAt = Number(fault[1]);
    const stopFor = positiveNumber(parsed.values.for, 'for', NaN);
    if (Number.isNaN(stopFor)) throw new UsageError('--for SECONDS is required');
    if (stopAt >= duration) throw new UsageError('the fault must come before the end of --duration');
    const url =
      settings.chaos.brokerUrl ||
      (broker === 'rabbitmq' ? 'amqp://guest:guest@127.0.0.1:5672' : 'nats://127.0.0.1:4222');
    const rate = positiveNumber(parsed.values.rate, 'rate', 100);
    const run = await runBrokerChaos(
      serviceConfig(),
      {
        broker,
        url,
        rate,
        duration,
        stopAt,
        stopFor,
        drainTimeoutS: positiveNumber(parsed.values.drain, 'drain', 120),
        control: {
          ...(parsed.values['stop-command'] ? { stop: parsed.values['stop-command'] } : {}),
          ...(parsed.values['start-command'] ? { start: parsed.values['start-command'] } : {}),
        },
      },
      io.err,
      progressOutput(io),
    );
    const report = run.report;
    printBrokerReport(report, io.out);
    if (json) fs.writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
    await writeHtml(`chaos-broker-${broker}`, brokerPage(run, { stopAt, stopFor, rate, duration }));
    return report.eventsLost === 0 && report.duplicatedEffects === 0 && report.producerFailures === 0 ? 0 : 1;
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`chaos: ${error.message}`);
      io.err(CHAOS_USAGE);
      return 2;
    }
    throw error;
  }
}
