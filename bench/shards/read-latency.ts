import { performance } from 'node:perf_hooks';
import type { Shard } from '../../src/platform/sharding/shard-set.ts';
import { collectGarbage } from '../support/gc.ts';
import { interleave } from '../support/schedule.ts';
import { checkRead, getJson, type ReadCase } from './reads.ts';

/** Milliseconds of every timed round of one read. */
export interface ReadTimings {
  read: ReadCase;
  /** The stratum request, until its body was read. */
  stratum: number[];
  /** Each shard's query asked alone, one shard after another: the slowest of them, per round. */
  slowestAlone: number[];
  /** The same, summed: what asking the shards one after another costs. */
  sumAlone: number[];
  /** Every shard's query sent at once, directly (no stratum): the slowest of them, per round. */
  slowestTogether: number[];
  /**
   * The statements stratum itself sends (its per-shard page, or the same stats query) at once, directly: the
   * slowest of them, per round. What stratum adds beyond its own fan-out is stratum over this.
   */
  slowestStratumStatements: number[];
  /** GET /healthz of the same stratum server (no database): what any request costs over HTTP there. */
  httpFloor: number[];
  /** Each shard's alone time, by shard position. */
  alone: number[][];
}

type Method = { key: 'stratum' | 'alone' | 'together' | 'stratum-statements' | 'http-floor'; samples: number };

const WARM_UP_ROUNDS = 20;

/**
 * Times one read for `rounds` rounds. Each round asks stratum once, every shard alone one after another (the
 * shard order rotating), every shard at once directly, for a page the statements stratum itself sends at
 * once directly, and GET /healthz of the same server (the HTTP floor); the order rotates round by round so none always runs first or after the same one. Stratum's answer is checked against the shards' own first.
 */
export async function timeRead(
  read: ReadCase,
  baseUrl: string,
  shards: readonly Shard[],
  rounds: number,
  progress: (line: string) => void,
): Promise<ReadTimings> {
  await checkRead(read, baseUrl, shards);
  const timings: ReadTimings = {
    read,
    stratum: [],
    slowestAlone: [],
    sumAlone: [],
    slowestTogether: [],
    slowestStratumStatements: [],
    httpFloor: [],
    alone: shards.map(() => []),
  };
  const run = async (method: Method['key'], round: number, record: boolean) => {
    if (method === 'stratum') {
      const t0 = performance.now();
      await getJson(baseUrl, read.path);
      if (record) timings.stratum.push(performance.now() - t0);
    } else if (method === 'http-floor') {
      const t0 = performance.now();
      await getJson(baseUrl, '/healthz');
      if (record) timings.httpFloor.push(performance.now() - t0);
    } else if (method === 'alone') {
      const each = shards.map(() => 0);
      for (let j = 0; j < shards.length; j++) {
        const i = (round + j) % shards.length;
        const t0 = performance.now();
        await read.askShard(shards[i]!.sql);
        each[i] = performance.now() - t0;
      }
      if (record) {
        timings.slowestAlone.push(Math.max(...each));
        timings.sumAlone.push(each.reduce((a, b) => a + b, 0));
        each.forEach((ms, i) => timings.alone[i]!.push(ms));
      }
    } else {
      const ask = method === 'together' ? read.askShard : read.askShardAsStratum!;
      const t0 = performance.now();
      const each = await Promise.all(
        shards.map(async (shard) => {
          await ask(shard.sql);
          return performance.now() - t0;
        }),
      );
      if (record)
        (method === 'together' ? timings.slowestTogether : timings.slowestStratumStatements).push(Math.max(...each));
    }
  };
  const methods: Method[] = [
    { key: 'stratum', samples: rounds },
    { key: 'alone', samples: rounds },
    { key: 'together', samples: rounds },
    { key: 'http-floor', samples: rounds },
    ...(read.askShardAsStratum ? [{ key: 'stratum-statements' as const, samples: rounds }] : []),
  ];
  for (let r = 0; r < WARM_UP_ROUNDS; r++) for (const m of methods) await run(m.key, r, false);
  for (const [r, round] of interleave(methods).entries()) {
    collectGarbage();
    for (const m of round) await run(m.key, r, true);
    if ((r + 1) % 50 === 0 || r + 1 === rounds) {
      progress(
        `${read.key}: round ${r + 1}/${rounds}: stratum ${timings.stratum.at(-1)!.toFixed(1)} ms, slowest shard alone ${timings.slowestAlone.at(-1)!.toFixed(1)} ms, ` +
          `slowest of all at once ${timings.slowestTogether.at(-1)!.toFixed(1)} ms`,
      );
    }
  }
  return timings;
}
