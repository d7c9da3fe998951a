import { percentile } from '../support/stats.ts';

export interface Quantiles {
  p50: number;
  p99: number;
}

/** Where an event's time went, from its COMMIT returning to the runner's acknowledgement (p50 / p99 of each step). */
export interface StageBreakdown {
  /** COMMIT returned → the relay called broker.publish with it (relay wake-up, claim). */
  relayPickup: Quantiles;
  /** broker.publish called → resolved (the broker durably has it). */
  publish: Quantiles;
  /** publish resolved → the runner got the delivery (the broker's push or pull, and waiting behind earlier events of the partition). */
  toRunner: Quantiles;
  /** delivery → handler running (the runner's BEGIN and processed_messages insert). */
  runnerBegin: Quantiles;
  /** handler → acknowledgement (the runner's COMMIT). */
  runnerCommit: Quantiles;
  /**
   * The adapter's own time per event: from the runner acknowledging one event to the next delivery on the same
   * partition, counted only when that next event was already published (so it waited on the adapter, not the relay).
   */
  adapterGap: Quantiles | undefined;
}

/** What one run measured, in milliseconds and events per second. */
export interface RunMeasurement {
  committed: number;
  transactions: number;
  /** Transactions the producer did not start because too many were already waiting (it could not keep up). */
  shed: number;
  producerErrors: number;
  /** Events acknowledged during the load window, per second of it. */
  ackedPerSecond: number;
  /** Events committed during the load window, per second of it. */
  committedPerSecond: number;
  /**
   * Commit to handler over every committed event; an event not handled counts with the time it had waited when
   * measured, a lower bound, so a value at or above `censoredFrom` is itself only a lower bound.
   */
  latency: { p50: number; p99: number; max: number; censoredFrom?: number } | undefined;
  /** Committed events whose handler never ran. */
  lost: number;
  /** Where the events not handled were when the run was measured. */
  unhandled: { inOutbox: number; inBroker: number; inRunner: number };
  /** The relay's publish calls that carried this run's events, and their mean size. */
  relayBatches: { count: number; meanSize: number };
  /** Events whose handler ran more than once. */
  duplicated: number;
  /** Deliveries beyond the first (redeliveries the runner deduplicated, or retries). */
  redelivered: number;
  /** Handled before the producer saw its COMMIT return: counted as 0 ms. */
  handledBeforeCommitReturned: number;
  /** From the moment a transaction was due to its COMMIT returning: the producer's own lag. */
  commitLag: Quantiles;
  stages: StageBreakdown | undefined;
}

/** Times of one event, from `performance.now()`; the first of each when something happened twice. */
interface EventTimes {
  committedAt?: number;
  publishStartAt?: number;
  publishedAt?: number;
  deliveredAt?: number;
  handledAt?: number;
  ackedAt?: number;
  deliveries: number;
  handles: number;
}

/**
 * Times of one run's events, keyed by event id, all from `performance.now()` in this process: when their
 * transaction committed, when the relay published them, when the runner got, handled and acknowledged them.
 */
export class RunTracker {
  private readonly events = new Map<string, EventTimes>();
  private readonly commitLags: number[] = [];
  private readonly adapterGaps: number[] = [];
  private readonly lastAckByPartition = new Map<number, number>();
  private readonly relayBatchSizes: number[] = [];
  private committedEvents = 0;
  private handledEvents = 0;
  transactions = 0;
  shed = 0;
  producerErrors = 0;

  constructor(readonly run: string) {}

  private times(id: string): EventTimes {
    let t = this.events.get(id);
    if (!t) this.events.set(id, (t = { deliveries: 0, handles: 0 }));
    return t;
  }

  committed(ids: readonly string[], dueAt: number, at: number): void {
    this.transactions++;
    this.commitLags.push(at - dueAt);
    for (const id of ids) {
      this.times(id).committedAt = at;
      this.committedEvents++;
    }
  }

  relayBatch(size: number): void {
    this.relayBatchSizes.push(size);
  }

  publishing(id: string, at: number): void {
    this.times(id).publishStartAt ??= at;
  }

  published(id: string, at: number): void {
    this.times(id).publishedAt ??= at;
  }

  delivered(id: string, partition: number, at: number): void {
    const t = this.times(id);
    t.deliveries++;
    t.deliveredAt ??= at;
    const lastAck = this.lastAckByPartition.get(partition);
    if (lastAck !== undefined && t.publishedAt !== undefined && t.publishedAt <= lastAck)
      this.adapterGaps.push(at - lastAck);
  }

  handled(id: string, at: number): void {
    const t = this.times(id);
    if (++t.handles === 1) {
      t.handledAt = at;
      this.handledEvents++;
    }
  }

  acked(id: string, partition: number, at: number): void {
    this.times(id).ackedAt ??= at;
    this.lastAckByPartition.set(partition, at);
  }

  get committedCount(): number {
    return this.committedEvents;
  }

  /** Events of this run handled so far (only this run's events reach this tracker, and only committed ones exist). */
  get handledCount(): number {
    return this.handledEvents;
  }

  /** The load window is [windowStart, windowEnd); latencies are over every committed event of the run, as of `measuredAt`. */
  measure(windowStart: number, windowEnd: number, measuredAt: number): RunMeasurement {
    const seconds = (windowEnd - windowStart) / 1000;
    const inWindow = (t: number | undefined) => t !== undefined && t >= windowStart && t < windowEnd;
    const latencies: number[] = [];
    const stage = {
      relayPickup: [] as number[],
      publish: [] as number[],
      toRunner: [] as number[],
      runnerBegin: [] as number[],
      runnerCommit: [] as number[],
    };
    let early = 0;
    let lost = 0;
    let censoredFrom: number | undefined;
    let committedInWindow = 0;
    let ackedInWindow = 0;
    let duplicated = 0;
    let redelivered = 0;
    const unhandled = { inOutbox: 0, inBroker: 0, inRunner: 0 };
    for (const t of this.events.values()) {
      if (inWindow(t.ackedAt)) ackedInWindow++;
      if (t.handles > 1) duplicated++;
      redelivered += Math.max(0, t.deliveries - 1);
      if (t.committedAt === undefined) continue;
      if (inWindow(t.committedAt)) committedInWindow++;
      if (t.handledAt === undefined) {
        lost++;
        if (t.publishedAt === undefined) unhandled.inOutbox++;
        else if (t.deliveredAt === undefined) unhandled.inBroker++;
        else unhandled.inRunner++;
        const waited = measuredAt - t.committedAt;
        latencies.push(waited);
        censoredFrom = Math.min(censoredFrom ?? waited, waited);
        continue;
      }
      if (t.handledAt < t.committedAt) early++;
      latencies.push(Math.max(0, t.handledAt - t.committedAt));
      if (
        t.publishStartAt !== undefined &&
        t.publishedAt !== undefined &&
        t.deliveredAt !== undefined &&
        t.ackedAt !== undefined
      ) {
        stage.relayPickup.push(Math.max(0, t.publishStartAt - t.committedAt));
        stage.publish.push(t.publishedAt - t.publishStartAt);
        // A delivery may come before publish() resolves (the broker pushes before it confirms).
        stage.toRunner.push(Math.max(0, t.deliveredAt - t.publishedAt));
        stage.runnerBegin.push(t.handledAt - t.deliveredAt);
        stage.runnerCommit.push(t.ackedAt - t.handledAt);
      }
    }
    const sorted = latencies.sort((a, b) => a - b);
    return {
      committed: this.committedEvents,
      transactions: this.transactions,
      shed: this.shed,
      producerErrors: this.producerErrors,
      ackedPerSecond: ackedInWindow / seconds,
      committedPerSecond: committedInWindow / seconds,
      latency:
        sorted.length === 0
          ? undefined
          : { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1)!, censoredFrom },
      lost,
      unhandled,
      relayBatches: {
        count: this.relayBatchSizes.length,
        meanSize:
          this.relayBatchSizes.length === 0
            ? 0
            : this.relayBatchSizes.reduce((a, b) => a + b, 0) / this.relayBatchSizes.length,
      },
      duplicated,
      redelivered,
      handledBeforeCommitReturned: early,
      commitLag: quantiles(this.commitLags) ?? { p50: 0, p99: 0 },
      stages:
        stage.relayPickup.length === 0
          ? undefined
          : {
              relayPickup: quantiles(stage.relayPickup)!,
              publish: quantiles(stage.publish)!,
              toRunner: quantiles(stage.toRunner)!,
              runnerBegin: quantiles(stage.runnerBegin)!,
              runnerCommit: quantiles(stage.runnerCommit)!,
              adapterGap: quantiles(this.adapterGaps),
            },
    };
  }
}

function quantiles(samples: number[]): Quantiles | undefined {
  if (samples.length === 0) return undefined;
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}
