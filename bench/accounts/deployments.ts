import { spawnBenchServers, type BenchServers } from './spawn-servers.ts';
import { spawnSplit, type SplitDeployment } from './spawn-split.ts';

/** Every server process of the benchmark, all on one PostgreSQL and one seeded dataset. */
export interface BenchDeployments {
  /** PostgreSQL (it owns the embedded one), seeding, stratum cached and uncached, the bare route: tracing on. */
  oneProcess: BenchServers;
  /** stratum cached again, in a process of its own with OTEL_SDK_DISABLED=true. */
  tracingOff: BenchServers;
  /** The split deployment (five processes), tracing on; undefined with `--no-split`. */
  split?: SplitDeployment;
  /** The same with OTEL_SDK_DISABLED=true in each of its processes. */
  splitTracingOff?: SplitDeployment;
  /** Stops every process: the ones on the database first, the one that owns it last. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * IMAGES_TIMEOUT_MS and QUOTES_TIMEOUT_MS at the request's deadline (TX_DEADLINE_MS), in every stratum process:
 * a part is then left out only when the whole answer would fail anyway. At their defaults (250 ms) the split
 * gateway, whose calls queue for its 8 connections per instance under 100 connections, answers part of its
 * requests degraded, which are cheaper than complete ones: the comparison would flatter it. In one process the
 * image and the quote come well within either.
 */
function completeAnswers(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const deadline = env.TX_DEADLINE_MS?.trim() || '2000';
  return { IMAGES_TIMEOUT_MS: deadline, QUOTES_TIMEOUT_MS: deadline };
}

/**
 * Starts the one-process server process, then the others on its database at the same time. Tracing is on where
 * nothing switches it off: OTEL_SDK_DISABLED is removed from the environment of the "on" processes, so a shell
 * that sets it does not turn the comparison into off against off. What started is stopped again when anything
 * fails to start.
 */
export async function startDeployments(
  options: { split: boolean },
  progress: (line: string) => void,
): Promise<BenchDeployments> {
  const { OTEL_SDK_DISABLED: _otel, ...rest } = process.env;
  const tracingOn = { ...rest, ...completeAnswers(rest) };
  const tracingOffEnv = { ...tracingOn, OTEL_SDK_DISABLED: 'true' };
  progress('starting the server process: PostgreSQL, seeding, two stratum instances, bare Fastify');
  const oneProcess = await spawnBenchServers({ env: tracingOn });
  progress(
    `starting stratum cached with OTEL_SDK_DISABLED=true${options.split ? ', and the split deployment twice (tracing on, off): 5 processes each' : ''}`,
  );
  const database = oneProcess.database;
  const [off, on, splitOff] = await Promise.allSettled([
    spawnBenchServers({ label: 'the tracing-off server process', env: tracingOffEnv, join: { database } }),
    options.split ? spawnSplit({ label: 'split', database, env: tracingOn }) : undefined,
    options.split ? spawnSplit({ label: 'split tracing off', database, env: tracingOffEnv }) : undefined,
  ]);
  const value = <T>(r: PromiseSettledResult<T>) => (r.status === 'fulfilled' ? r.value : undefined);
  const [tracingOff, split, splitTracingOff] = [value(off), value(on), value(splitOff)];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await Promise.allSettled([tracingOff?.stop(), split?.stop(), splitTracingOff?.stop()]);
      await oneProcess.stop();
    })());
  const failed = [off, on, splitOff].find((r) => r.status === 'rejected');
  if (failed || !tracingOff) {
    await stop();
    throw (failed as PromiseRejectedResult).reason;
  }
  return {
    oneProcess,
    tracingOff,
    ...(split ? { split } : {}),
    ...(splitTracingOff ? { splitTracingOff } : {}),
    stop,
  };
}
