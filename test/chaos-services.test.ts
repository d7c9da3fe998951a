import { describe, expect, it } from 'vitest';
import { firstSampleAt, longestGapMs, rotationOf, type RotationSample } from '../tools/chaos/rotation-watch.ts';
import { planServiceFaults } from '../tools/chaos/service-fault-plan.ts';
import { planServices } from '../tools/chaos/service-processes.ts';
import { analyzeServicesRun, type FaultEvents, type RequestRecord } from '../tools/chaos/service-windows.ts';
import { runTools } from '../tools/cli.ts';

// The pure parts of `chaos services`: its plans, the reading of the gateway's /readyz, and the judging of a run
// from synthetic requests and samples (the run itself starts six processes for 90 s: docs/benchmarks.md).

const QUOTES = ['quotes-1', 'quotes-2'];
const IMAGES = ['images-1', 'images-2'];

/** 50 requests a second from 0 to `untilS`, each answered in `latency(atS)` ms with `degraded(atS)`. */
function load(
  untilS: number,
  latency: (atS: number) => number,
  degraded: (atS: number) => string[] = () => [],
): RequestRecord[] {
  return Array.from({ length: untilS * 50 }, (_, i) => {
    const atS = i / 50;
    return { atS, ok: true, latencyMs: latency(atS), degraded: degraded(atS) };
  });
}

/** A /readyz answer every 100 ms, with `out(name, atS)` saying which instances are out of rotation. */
function samples(untilS: number, out: (name: string, atS: number) => boolean): RotationSample[] {
  return Array.from({ length: untilS * 10 }, (_, i) => {
    const atS = i / 10;
    return { atS, inRotation: Object.fromEntries([...QUOTES, ...IMAGES].map((n) => [n, !out(n, atS)])) };
  });
}

describe('chaos services plans', () => {
  it('kills one quotes then one images instance in one-of-two, every quotes instance in all-quotes', () => {
    expect(planServiceFaults('one-of-two', { atS: 20, forS: 20, quotes: QUOTES, images: IMAGES })).toEqual([
      { label: 'quotes-1', dependency: 'quotes', targets: ['quotes-1'], killAtS: 20, restartAtS: 40 },
      { label: 'images-1', dependency: 'images', targets: ['images-1'], killAtS: 45, restartAtS: 65 },
    ]);
    expect(planServiceFaults('all-quotes', { atS: 20, forS: 20, quotes: QUOTES, images: IMAGES })).toEqual([
      { label: 'quotes-1 + quotes-2', dependency: 'quotes', targets: QUOTES, killAtS: 20, restartAtS: 40 },
    ]);
  });

  it('puts accounts-data first and the gateway last, on the ports given', () => {
    expect(planServices([1, 2, 3, 4, 5, 6], 2, 2)).toEqual([
      { name: 'accounts-data-1', role: 'accounts-data', port: 1 },
      { name: 'images-1', role: 'images', port: 2 },
      { name: 'images-2', role: 'images', port: 3 },
      { name: 'quotes-1', role: 'quotes', port: 4 },
      { name: 'quotes-2', role: 'quotes', port: 5 },
      { name: 'accounts-1', role: 'accounts', port: 6 },
    ]);
    expect(() => planServices([1, 2], 2, 2)).toThrow(/6 ports/);
  });
});

describe('reading the rotation from /readyz', () => {
  it('names the instances it knows, under any dependency, and ignores the rest', () => {
    const names = new Map([
      ['http://127.0.0.1:1', 'quotes-1'],
      ['http://127.0.0.1:2', 'images-1'],
    ]);
    const body = {
      status: 'ready',
      dependencies: {
        quotes: [{ url: 'http://127.0.0.1:1', inRotation: false, breaker: 'open' }],
        images: [
          { url: 'http://127.0.0.1:2', inRotation: true },
          { url: 'http://127.0.0.1:9', inRotation: true },
        ],
        'accounts-data': 'not a list',
      },
    };
    expect(rotationOf(body, names)).toEqual({ 'quotes-1': false, 'images-1': true });
    expect(rotationOf({ code: 'DEPENDENCY.UNAVAILABLE' }, names)).toEqual({});
  });

  it('finds the first sample from a time with every instance named in or out, and the longest gap', () => {
    const s: RotationSample[] = [
      { atS: 1, inRotation: { a: true, b: true } },
      { atS: 1.1, inRotation: { a: false, b: true } },
      { atS: 1.4, inRotation: { a: false, b: false } },
      { atS: 2, inRotation: { a: true } },
    ];
    expect(firstSampleAt(s, 1, ['a', 'b'], false)).toBe(1.4);
    expect(firstSampleAt(s, 1, ['a'], false)).toBe(1.1);
    expect(firstSampleAt(s, 1.5, ['a'], true)).toBe(2);
    // An instance missing from a sample is neither in nor out.
    expect(firstSampleAt(s, 1.5, ['a', 'b'], true)).toBeNull();
    expect(longestGapMs(s, 0, 3)).toBe(600);
    expect(longestGapMs(s, 1.9, 3)).toBeNull();
  });
});

describe('judging a run', () => {
  const oneOfTwoEvents: FaultEvents[] = [
    {
      fault: planServiceFaults('one-of-two', { atS: 20, forS: 20, quotes: QUOTES, images: IMAGES })[0]!,
      killedAtS: 20,
      restartedAtS: 40,
      listeningAtS: { 'quotes-1': 42 },
    },
    {
      fault: planServiceFaults('one-of-two', { atS: 20, forS: 20, quotes: QUOTES, images: IMAGES })[1]!,
      killedAtS: 45,
      restartedAtS: 65,
      listeningAtS: { 'images-1': 67 },
    },
  ];
  const oneOfTwoSamples = samples(
    75,
    (n, t) => (n === 'quotes-1' && t >= 20.2 && t < 42.5) || (n === 'images-1' && t >= 45.3 && t < 67.4),
  );

  it('holds one-of-two with no failure, nothing degraded and each window within 2x; windows run to back in rotation', () => {
    const analysis = analyzeServicesRun({
      fault: 'one-of-two',
      rampS: 5,
      durationS: 75,
      records: load(75, (t) => (t < 5 ? 500 : t >= 45 && t < 46 ? 25 : 10)),
      events: oneOfTwoEvents,
      samples: oneOfTwoSamples,
      failed: 0,
    });
    // Before the first fault: after the ramp (its slow answers left out), up to the kill.
    expect(analysis.baseline).toMatchObject({ fromS: 5, toS: 20, requests: 750, p99Ms: 10 });
    const [quotes, images] = analysis.windows;
    expect(quotes).toMatchObject({ fromS: 20, toS: 42.5, requests: 1125, p99Ms: 10, ratio: 1, degraded: 0, failed: 0 });
    expect(quotes!.outOfRotationAfterKillMs).toBe(200);
    expect(quotes!.instances).toEqual([
      { name: 'quotes-1', listeningAfterRestartMs: 2000, backInRotationAfterListeningMs: 500 },
    ]);
    expect(quotes!.down).toMatchObject({ fromS: 20, toS: 40 });
    expect(quotes!.rejoining).toMatchObject({ fromS: 40, toS: 42.5 });
    // 50 answers of 25 ms in a window of 1120: above its 99th percentile, so 2.5x.
    expect(images).toMatchObject({ fromS: 45, toS: 67.4, requests: 1120, p99Ms: 25, ratio: 2.5 });
    expect(analysis.checks.map((c) => [c.requirement, c.held])).toEqual([
      ['no request failed', true],
      ['no degraded answer', true],
      ['p99 while quotes-1 down within 2x of before', true],
      ['p99 while images-1 down within 2x of before', false],
    ]);
  });

  it('fails one-of-two on a failure or a degraded answer, counting the degraded inside and outside the windows', () => {
    const records = load(
      75,
      () => 10,
      (t) => (t >= 30 && t < 30.1 ? ['quotes'] : t >= 70 && t < 70.04 ? ['images'] : []),
    );
    records[100] = { ...records[100]!, ok: false, latencyMs: null };
    const analysis = analyzeServicesRun({
      fault: 'one-of-two',
      rampS: 5,
      durationS: 75,
      records,
      events: oneOfTwoEvents,
      samples: oneOfTwoSamples,
      failed: 1,
    });
    expect(analysis.degraded).toEqual({ inside: 5, outside: 2, byParts: { quotes: 5, images: 2 } });
    expect(analysis.checks.filter((c) => !c.held).map((c) => c.detail)).toEqual(['1 failed', '7 degraded']);
  });

  const allQuotes = (listening: Record<string, number | null>, out: (n: string, t: number) => boolean) =>
    analyzeServicesRun({
      fault: 'all-quotes',
      rampS: 5,
      durationS: 75,
      records: load(
        75,
        () => 10,
        (t) => (t >= 20 && t < 42.5 ? ['quotes'] : []),
      ),
      events: [
        {
          fault: planServiceFaults('all-quotes', { atS: 20, forS: 20, quotes: QUOTES, images: IMAGES })[0]!,
          killedAtS: 20,
          restartedAtS: 40,
          listeningAtS: listening,
        },
      ],
      samples: samples(75, out),
      failed: 0,
    });

  it('holds all-quotes when every answer after the breaker opened is degraded ["quotes"] and the breakers keep time', () => {
    const analysis = allQuotes(
      { 'quotes-1': 41.8, 'quotes-2': 42 },
      (n, t) => QUOTES.includes(n) && t >= 20.3 && t < 42.5,
    );
    expect(analysis.afterBreakerOpened).toEqual({ fromS: 20.3, toS: 40, requests: 985, degradedQuotes: 985, other: 0 });
    expect(analysis.degraded).toEqual({ inside: 1125, outside: 0, byParts: { quotes: 1125 } });
    expect(analysis.windows[0]!.instances.map((i) => i.backInRotationAfterListeningMs)).toEqual([700, 500]);
    expect(analysis.checks.every((c) => c.held)).toBe(true);
  });

  it('fails all-quotes on a slow breaker, an instance never back, or an answer not degraded after the breaker opened', () => {
    const slow = allQuotes({ 'quotes-1': 41.8, 'quotes-2': null }, (n, t) => QUOTES.includes(n) && t >= 21.5);
    expect(slow.windows[0]).toMatchObject({ outOfRotationAfterKillMs: 1500, toS: 75 });
    expect(slow.checks.filter((c) => !c.held).map((c) => c.requirement)).toEqual([
      'every quotes instance out of rotation within 1000 ms of the kill',
      'quotes-1 back in rotation within 5000 ms of listening',
      'quotes-2 back in rotation within 5000 ms of listening',
    ]);
    const never = allQuotes({ 'quotes-1': 41.8, 'quotes-2': 42 }, () => false);
    expect(never.afterBreakerOpened).toBeNull();
    expect(never.checks.find((c) => c.requirement.startsWith('every answer'))).toMatchObject({
      held: false,
      detail: 'the breaker never opened',
    });
  });
});

describe('npm run tools -- chaos services arguments', () => {
  it.each([
    [['chaos', 'services', '--fault', 'all-images']],
    [['chaos', 'services', '--images', '1']],
    [['chaos', 'services', '--quotes', '10']],
    [['chaos', 'services', '--duration', '60']],
    [['chaos', 'services', '--ramp', '25']],
    [['chaos', 'services', '--port', 'x']],
  ])('exits 2 with the usage for %j, before starting anything', async (args) => {
    const err: string[] = [];
    const code = await runTools(args, { out: () => {}, err: (l) => err.push(l) }, {}, process.cwd());
    expect(code).toBe(2);
    expect(err.join('\n')).toMatch(/usage: npm run tools -- chaos/);
  });
});
