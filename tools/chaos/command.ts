import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Config } from '../../src/config/config.ts';
import type { ToolsConfig } from '../../src/config/tools-config.ts';
import { htmlReportPath, writeHtmlReport } from '../loadtest/html-report.ts';
import { progressOutput, type ProgressOutput } from '../loadtest/progress.ts';
import { printBrokerReport, runBrokerChaos } from './broker-chaos.ts';
import { brokerPage, failoverPage, servicesPage } from './chaos-pages.ts';
import { printFailoverReport, runFailoverChaos, type FailoverFault } from './failover-chaos.ts';
import { isServicesFault, planServiceFaults } from './service-fault-plan.ts';
import { runServicesChaos } from './services-chaos.ts';
import { printServicesReport } from './services-report.ts';

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Where the live progress line goes; by default stderr when it is a terminal, else `err` every 5 s. */
  progress?: ProgressOutput;
}

export const CHAOS_USAGE = `usage: npm run tools -- chaos failover --scenario accounts-mixed --rate N --duration S --fault kill-leader|kill-postgres|switchover@SECONDS [--url URL] [--json FILE] [--html FILE | --no-html]
       npm run tools -- chaos broker --broker rabbitmq|nats --fault stop@SECONDS --for SECONDS [--rate N] [--duration S] [--json FILE] [--html FILE | --no-html]
       npm run tools -- chaos services [--fault one-of-two|all-quotes] [--rate N] [--duration S] [--ramp S] [--at S] [--for S] [--images N] [--quotes N] [--port P] [--json FILE] [--html FILE | --no-html]`;

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

  chaos services the split accounts deployment started on loopback on its own (accounts-data x1, images x2,
                 quotes x2, the gateway; each \`stratum serve\` with its ROLE, on the embedded PostgreSQL or
                 DATABASE_URL), the accounts seeded, then the accounts-read load against the gateway (default 50
                 req/s for 75 s, ramp 5 s) while instances are SIGKILLed and started again on their ports; the
                 gateway's /readyz is polled every 100 ms. Every service is stopped at the end, on Ctrl-C too.
    --fault          one-of-two (default): the first quotes instance killed at --at s (default 20) for --for s
                     (default 20), then 5 s later the first images instance for --for s. Requires no failed
                     request, no degraded answer and the p99 of each fault window (kill to back in rotation)
                     within 2x of the p99 before the first fault (after the ramp).
                     all-quotes: every quotes instance killed at --at s for --for s. Requires no failed request,
                     every answer due from the breaker opening to the restart degraded ["quotes"], every quotes
                     instance out of rotation within 1 s of the kill and each back within 5 s of listening again.
    --images, --quotes  instances of each (default 2, up to 9)
    --port           the gateway's port, the others on the ports after it (default: free ports)
    --accounts       accounts to seed and read (default 15000)
    --timeout        seconds a request may take (default 10)
    --log            append every line the services write to this file

  Each prints a progress line on stderr while the load runs (sent, answered, errors, p99 of the last 5 s) and
  writes an HTML report at the end: throughput, latency percentiles and status codes per second with the fault
  windows shaded, and the failed, retried, missing or degraded counts; one file that opens offline.
    --json           also write the report as JSON to this file
    --html           the HTML report's file (default: beside --json as .html, else
                     chaos-failover-<fault>-<yyyymmdd-hhmmss>.html, chaos-broker-<broker>-<…>.html or
                     chaos-services-<fault>-<…>.html here)
    --no-html        write no HTML report

Exit code: 0 when nothing was lost or applied twice (services: every requirement held), 1 otherwise, 2 for bad
arguments.`;

function positiveNumber(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--${name} must be a positive number, got "${raw}"`);
  return value;
}

function instanceCount(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  if (!/^[1-9]$/.test(raw)) throw new UsageError(`--${name} must be a whole number from 1 to 9, got "${raw}"`);
  return Number(raw);
}

class UsageError extends Error {}

/**
 * `npm run tools -- chaos failover|broker|services ...`. `serviceConfig` loads the service's configuration, which
 * broker chaos runs in (its main database) and services chaos reads its database and shutdown timeout from; a
 * failover run does not need it. `env` is what the services of `chaos services` start from.
 */
export async function runChaos(
  args: string[],
  io: Io,
  settings: ToolsConfig,
  serviceConfig: () => Config,
  env: Record<string, string | undefined> = process.env,
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
        ramp: { type: 'string' },
        at: { type: 'string' },
        images: { type: 'string' },
        quotes: { type: 'string' },
        port: { type: 'string' },
        log: { type: 'string' },
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
    if ((kind !== 'broker' && kind !== 'failover' && kind !== 'services') || extra.length > 0)
      throw new UsageError('the chaos to run is `failover`, `broker` or `services`');
    if (html !== undefined && noHtml) throw new UsageError('--html and --no-html exclude each other');
    if (kind === 'services') {
      const v = parsed.values;
      const fault = v.fault ?? 'one-of-two';
      if (!isServicesFault(fault)) throw new UsageError('--fault must be one-of-two or all-quotes');
      const durationS = positiveNumber(v.duration, 'duration', 75);
      const rampS = v.ramp !== undefined && Number(v.ramp) === 0 ? 0 : positiveNumber(v.ramp, 'ramp', 5);
      const atS = positiveNumber(v.at, 'at', 20);
      const forS = positiveNumber(v.for, 'for', 20);
      const images = instanceCount(v.images, 'images', 2);
      const quotes = instanceCount(v.quotes, 'quotes', 2);
      if (fault === 'one-of-two' && (images < 2 || quotes < 2))
        throw new UsageError('--fault one-of-two needs at least 2 images and 2 quotes instances');
      if (rampS >= atS) throw new UsageError('the ramp must end before the first fault (--at)');
      const last = planServiceFaults(fault, { atS, forS, quotes: ['q'], images: ['i'] }).at(-1)!.restartAtS;
      if (last + 5 > durationS)
        throw new UsageError(
          `the plan restarts its last instance at ${last} s: --duration must be at least ${last + 5}`,
        );
      const port = v.port === undefined ? undefined : Number(v.port);
      if (port !== undefined && (!Number.isInteger(port) || port < 1 || port + images + quotes + 1 > 65_535))
        throw new UsageError(`--port must be a port number with ${images + quotes + 1} free after it, got "${v.port}"`);
      const config = serviceConfig();
      const run = await runServicesChaos(
        {
          fault,
          rate: positiveNumber(v.rate, 'rate', 50),
          durationS,
          rampS,
          accounts: positiveNumber(v.accounts, 'accounts', 15000),
          atS,
          forS,
          images,
          quotes,
          port,
          timeoutS: positiveNumber(v.timeout, 'timeout', 10),
          env,
          database: config.database.kind === 'embedded' ? `embedded (${config.database.home})` : 'DATABASE_URL',
          graceMs: config.shutdownTimeoutMs + 5000,
          logFile: v.log,
        },
        io.err,
        progressOutput(io),
      );
      printServicesReport(run.report, io.out);
      if (json) fs.writeFileSync(json, `${JSON.stringify(run.report, null, 2)}\n`);
      await writeHtml(`chaos-services-${fault}`, servicesPage(run));
      return run.report.held ? 0 : 1;
    }
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
