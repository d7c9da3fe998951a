import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';

/** One answer of the gateway's /readyz: which instances were in rotation, by service name. */
export interface RotationSample {
  /** When the answer came, in seconds from the start of the load. */
  atS: number;
  inRotation: Record<string, boolean>;
}

export interface RotationWatch {
  readonly samples: RotationSample[];
  /** Stops polling and closes the connection; resolves once the poll in flight has ended. */
  stop(): Promise<void>;
}

interface InstanceState {
  url?: unknown;
  inRotation?: unknown;
}

/** The instances a /readyz body lists under `dependencies`, by the name `names` gives their URL. */
export function rotationOf(body: unknown, names: ReadonlyMap<string, string>): Record<string, boolean> {
  const dependencies = (body as { dependencies?: Record<string, unknown> } | null | undefined)?.dependencies;
  const found: Record<string, boolean> = {};
  for (const states of Object.values(dependencies ?? {})) {
    if (!Array.isArray(states)) continue;
    for (const state of states as InstanceState[]) {
      const name = typeof state?.url === 'string' ? names.get(state.url) : undefined;
      if (name !== undefined && typeof state.inRotation === 'boolean') found[name] = state.inRotation;
    }
  }
  return found;
}

/**
 * Polls the gateway's /readyz every `everyMs` (a poll that takes longer delays the next, none overlap) and keeps
 * each answer's view of the rotation. An answer is stamped when it arrives, so a delay measured from it is never
 * shorter than the real one. A poll that fails or times out leaves no sample.
 * @example const watch = watchRotation(new URL('http://127.0.0.1:8080'), names, performance.now(), 100);
 */
export function watchRotation(
  gateway: URL,
  names: ReadonlyMap<string, string>,
  origin: number,
  everyMs: number,
): RotationWatch {
  const pool = new Pool(gateway.origin, { connections: 2 });
  const samples: RotationSample[] = [];
  const stopped = new AbortController();
  const loop = (async () => {
    while (!stopped.signal.aborted) {
      const sentAt = performance.now();
      try {
        const answer = await pool.request({
          method: 'GET',
          path: '/readyz',
          signal: AbortSignal.any([stopped.signal, AbortSignal.timeout(1000)]),
        });
        const body: unknown = await answer.body.json();
        samples.push({ atS: (performance.now() - origin) / 1000, inRotation: rotationOf(body, names) });
      } catch {
        // No sample: the next poll tells.
      }
      const wait = everyMs - (performance.now() - sentAt);
      if (wait > 0) await sleep(wait, undefined, { signal: stopped.signal }).catch(() => {});
    }
  })();
  return {
    samples,
    async stop() {
      stopped.abort();
      await loop;
      await pool.destroy();
    },
  };
}

/**
 * When the first sample at or after `fromS` shows every one of `names` in rotation (`inRotation` true) or out of
 * it (false); null when none does.
 * @example firstSampleAt(samples, 20, ['quotes-1', 'quotes-2'], false) // 20.3: both out of rotation
 */
export function firstSampleAt(
  samples: readonly RotationSample[],
  fromS: number,
  names: readonly string[],
  inRotation: boolean,
): number | null {
  for (const sample of samples)
    if (sample.atS >= fromS && names.every((n) => sample.inRotation[n] === inRotation)) return sample.atS;
  return null;
}

/** The longest time between two samples from `fromS` to `toS`, in ms (null with fewer than two). */
export function longestGapMs(samples: readonly RotationSample[], fromS: number, toS: number): number | null {
  const inside = samples.filter((s) => s.atS >= fromS && s.atS <= toS);
  let longest: number | null = null;
  for (let i = 1; i < inside.length; i++) longest = Math.max(longest ?? 0, inside[i]!.atS - inside[i - 1]!.atS);
  return longest === null ? null : Math.round(longest * 1000);
}
