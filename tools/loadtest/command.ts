import { writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { htmlReportPath, writeHtmlReport } from './html-report.ts';
import { openHttpTarget } from './http-target.ts';
import { loadtestPage } from './loadtest-page.ts';
import { HELP, parseLoadtestArgs, USAGE } from './parse-args.ts';
import { progressOutput, startProgress, tallySample, type ProgressOutput } from './progress.ts';
import { createRandom } from './random.ts';
import { buildReport, formatReport, formatTitle, isCleanRun } from './report.ts';
import { runOpenModel } from './run-open-model.ts';
import { createScenario } from './scenarios.ts';
import { createTally } from './tally.ts';

export interface LoadtestIo {
  out(line: string): void;
  err(line: string): void;
  /** Where the live progress line goes; by default stderr when it is a terminal, else `err` every 5 s. */
  progress?: ProgressOutput;
}

/**
 * `npm run tools -- loadtest <scenario> …`: runs the load, prints the report, and returns the exit code: 0 for a
 * clean run, 1 when a request failed or something created was not read back as the run left it (or, for a
 * scenario with its own checks, when one of them failed), 2 for bad arguments. A progress line runs on stderr
 * meanwhile; the HTML report is written at the end (see htmlReportPath) and its path printed.
 * @example process.exitCode = await runLoadtestCommand(['accounts-read', '--url', 'http://127.0.0.1:8080', '--rate', '50', '--duration', '75', '--ramp', '5'], io);
 */
export async function runLoadtestCommand(args: string[], io: LoadtestIo): Promise<number> {
  const parsed = parseLoadtestArgs(args);
  if (parsed.kind === 'help') {
    io.out(HELP);
    return 0;
  }
  if (parsed.kind === 'invalid') {
    io.err(`loadtest: ${parsed.message}`);
    io.err(USAGE);
    return 2;
  }
  const options = parsed.options;
  // Names created by this run carry a tag of its start time, so a rerun with the same seed creates new accounts.
  const scenario = createScenario(options.scenario, {
    accounts: options.accounts,
    customers: options.customers,
    runTag: Date.now().toString(36),
    databaseUrl: options.databaseUrl,
    deadlineMs: options.deadlineMs,
    settleS: options.settleS,
  });
  const target = openHttpTarget(options.url, options.maxInFlight, options.timeoutS * 1_000);
  const log = (line: string) => io.err(`loadtest: ${line}`);
  try {
    await scenario.prepare?.(target, log);
    const htmlFile = htmlReportPath(options, `loadtest-${options.scenario}`);
    const startedAt = new Date();
    const started = performance.now();
    const tally = createTally(scenario.kinds);
    const progress = startProgress('loadtest', () => tallySample(tally, options.duration), progressOutput(io), io.err);
    try {
      await runOpenModel(scenario, target, createRandom(options.seed), {
        profile: { rate: options.rate, ramp: options.ramp, duration: options.duration, burst: options.concurrency },
        maxInFlight: options.maxInFlight,
        tally,
      });
    } finally {
      progress.stop();
    }
    const elapsedS = (performance.now() - started) / 1_000;
    const writeHtml = async (text: string[], report: Parameters<typeof loadtestPage>[0], checks?: unknown) => {
      if (!htmlFile) return;
      await writeHtmlReport(htmlFile, loadtestPage(report, tally.timeline, { text, startedAt, checks }));
      io.out(`HTML report: ${htmlFile}`);
    };
    if (scenario.check) {
      const verdict = await scenario.check(target, log);
      const report = buildReport(options, tally, null, elapsedS);
      // Its own table replaces the ok/failed counts: a 409 or a declined payment is a right answer there.
      const lines = [formatTitle(report), ...verdict.lines];
      for (const line of lines) io.out(line);
      if (options.json)
        await writeFile(options.json, `${JSON.stringify({ ...report, checks: verdict.json }, null, 2)}\n`);
      await writeHtml(lines, report, verdict.json);
      return verdict.ok ? 0 : 1;
    }
    const readBack = scenario.readBack ? await scenario.readBack(target) : null;
    const report = buildReport(options, tally, readBack, elapsedS);
    const lines = formatReport(report);
    for (const line of lines) io.out(line);
    if (options.json) await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
    await writeHtml(lines, report);
    return isCleanRun(report) ? 0 : 1;
  } finally {
    await target.close();
  }
}
