import type { SubscribeOptions, Subscription } from '../broker.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import type { RedisStreamsKeys } from './keys.ts';
import { planLeases } from './lease-plan.ts';
import { startPartitionWorker, type PartitionWorker } from './partition-worker.ts';
import { connectClient, type Log, type RedisStreamsClient } from './redis-client.ts';
import { ACQUIRE_LEASE, HEARTBEAT, RELEASE_LEASE, RENEW_LEASE, runScript } from './scripts.ts';

export interface GroupSubscriptionOptions {
  /** The broker's command connection: leases, heartbeats, notices; each partition gets a duplicate of it. */
  client: RedisStreamsClient;
  /** Subscribes to a pub/sub channel on the broker's listening connection; resolves with the way to unsubscribe. */
  listen: (channel: string, onMessage: (message: string) => void) => Promise<() => Promise<unknown>>;
  keys: RedisStreamsKeys;
  group: string;
  /** Unique per subscription: the consumer name in the group and the owner in its leases. */
  consumer: string;
  partitions: number;
  /** Decodes the entries the partition workers read (each by its own content type). */
  codec: EventCodec;
  leaseMs: number;
  claimIdleMs: number;
  batchSize: number;
  blockMs: number;
  retryDelayMs: number;
  now: () => Date;
  log: Log;
}

export interface GroupSubscription extends Subscription {
  /** Stops at once without finishing or acknowledging what is in hand (a process that dies); leases run out. */
  abandon(): void;
}

interface Held {
  worker: PartitionWorker;
  /** Renewals in a row that could not reach Redis; at 2 (two thirds of a lease) the lease counts as lost. */
  misses: number;
  releasing?: Promise<void>;
}

/**
 * One consumer of a group: a heartbeat in the group's member set and, every leaseMs / 3 or when another
 * consumer joins or lets partitions go (a pub/sub notice), a step towards its fair share of partition leases
 * (see planLeases). Each held lease is renewed by compare-and-renew and has a partition worker; a lease given
 * up is released only after its worker finished the entry in hand, so a partition is never served twice.
 * @example const s = await subscribeToGroup({ client, listen, keys, group: 'billing', consumer: randomUUID(), ... }, { handle });
 */
export async function subscribeToGroup(
  c: GroupSubscriptionOptions,
  options: SubscribeOptions,
): Promise<GroupSubscription> {
  const { client, keys, group, consumer } = c;
  const maxPartitions = options.maxPartitions ?? c.partitions;
  const tickMs = Math.max(10, Math.floor(c.leaseMs / 3));
  const held = new Map<number, Held>();
  /** Partitions whose lease was lost while their worker still finishes: not to be taken again meanwhile. */
  const finishing = new Map<number, { worker: PartitionWorker; done: Promise<void> }>();
  let state: 'running' | 'stopping' | 'stopped' = 'running';
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  let tickAgain = false;
  let stopped: Promise<void> | undefined;

  const leaseArgs = [consumer, String(c.leaseMs)];
  const notifyOthers = () =>
    client
      .publish(keys.rebalance(group), consumer)
      .catch((error: unknown) => c.log('redis streams broker: rebalance notice failed', error));

  async function createGroups(): Promise<void> {
    const streams = Array.from({ length: c.partitions }, (_, p) => [keys.events(p), keys.replay(group, p)]).flat();
    // From 0, not $: a group created after events were published still gets them (the streams keep everything).
    await Promise.all(
      streams.map((stream) =>
        client.xGroupCreate(stream, group, '0', { MKSTREAM: true }).catch((error: unknown) => {
          if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw error;
        }),
      ),
    );
  }

  function lose(partition: number, h: Held): void {
    held.delete(partition);
    c.log(
      `redis streams broker: lost the lease of partition ${partition} of group ${group}; another consumer serves it`,
    );
    const done = h.worker.stop('lost').finally(() => finishing.delete(partition));
    finishing.set(partition, { worker: h.worker, done });
  }

  async function renewLeases(): Promise<void> {
    const entries = [...held];
    const replies = await Promise.all(
      entries.map(([p]) =>
        runScript(client, RENEW_LEASE, [keys.lease(group, p)], leaseArgs).then(Number, (error: unknown) => {
          c.log(`redis streams broker: could not renew the lease of partition ${p} of group ${group}`, error);
          return -1;
        }),
      ),
    );
    entries.forEach(([p, h], i) => {
      if (held.get(p) !== h) return;
      if (replies[i] === 1) h.misses = 0;
      else if (replies[i] === 0 || ++h.misses >= 2) lose(p, h);
    });
  }

  function release(partition: number): Promise<void> {
    const h = held.get(partition);
    if (!h) return Promise.resolve();
    h.releasing ??= (async () => {
      await h.worker.stop('release');
      await runScript(client, RELEASE_LEASE, [keys.lease(group, partition)], [consumer]).catch((error: unknown) =>
        c.log(
          `redis streams broker: could not release partition ${partition} of group ${group}; it frees when the lease runs out`,
          error,
        ),
      );
      if (held.get(partition) === h) held.delete(partition);
    })();
    return h.releasing;
  }

  async function take(partition: number): Promise<boolean> {
    if (Number(await runScript(client, ACQUIRE_LEASE, [keys.lease(group, partition)], leaseArgs)) !== 1) return false;
    let connection: RedisStreamsClient | undefined;
    try {
      if (state === 'running')
        connection = await connectClient(client.duplicate(), c.log, `partition ${partition} reader`);
    } catch (error) {
      c.log(`redis streams broker: could not open a connection for partition ${partition} of group ${group}`, error);
    }
    if (connection === undefined || state !== 'running') {
      if (connection?.isOpen) connection.destroy();
      await runScript(client, RELEASE_LEASE, [keys.lease(group, partition)], [consumer]);
      return false;
    }
    const worker = startPartitionWorker({
      connection,
      partition,
      keys,
      group,
      consumer,
      codec: c.codec,
      handle: options.handle,
      handleBatch: options.handleBatch,
      unblock: (id) => client.sendCommand(['CLIENT', 'UNBLOCK', String(id)]),
      claimIdleMs: c.claimIdleMs,
      batchSize: c.batchSize,
      blockMs: c.blockMs,
      retryDelayMs: c.retryDelayMs,
      now: c.now,
      log: c.log,
    });
    held.set(partition, { worker, misses: 0 });
    return true;
  }

  async function tick(): Promise<void> {
    // Renewals first and never skipped: a lease in hand matters more than finding new ones.
    await renewLeases();
    if (state === 'stopped') return;
    const live = Number(await runScript(client, HEARTBEAT, [keys.members(group)], leaseArgs));
    if (state !== 'running') return;
    const serving = [...held].filter(([, h]) => !h.releasing).map(([p]) => p);
    const plan = planLeases({
      partitions: c.partitions,
      liveConsumers: live,
      maxPartitions,
      serving,
      busy: new Set([...held.keys(), ...finishing.keys()]),
    });
    if (plan.release.length > 0) void Promise.all(plan.release.map(release)).then(notifyOthers);
    let want = plan.want;
    for (const p of plan.candidates) {
      if (want <= 0 || state !== 'running') break;
      if (await take(p)) want--;
    }
  }

  /** Runs a tick now, or right after the one running; ticks never overlap. */
  function runTick(): Promise<void> {
    clearTimeout(timer);
    if (ticking) {
      tickAgain = true;
      return ticking;
    }
    ticking = (async () => {
      do {
        tickAgain = false;
        try {
          await tick();
        } catch (error) {
          if (state !== 'stopped')
            c.log(`redis streams broker: rebalancing group ${group} failed; trying again at the next tick`, error);
        }
      } while (tickAgain && state !== 'stopped');
    })().finally(() => {
      ticking = undefined;
      if (state !== 'stopped') timer = setTimeout(() => void runTick(), tickMs);
    });
    return ticking;
  }

  await createGroups();
  const unlisten = await c.listen(keys.rebalance(group), (message) => {
    if (message !== consumer && state === 'running') void runTick();
  });
  await runTick();
  await notifyOthers();

  return {
    stop() {
      if (state !== 'running') return stopped ?? Promise.resolve();
      state = 'stopping';
      stopped = (async () => {
        await unlisten().catch(() => {});
        // Ticks go on meanwhile, renewing the leases of partitions whose entry in hand takes long.
        await Promise.all([...held.keys()].map(release));
        await Promise.all([...finishing.values()].map((f) => f.done));
        state = 'stopped';
        clearTimeout(timer);
        await ticking; // so no heartbeat lands after leaving
        await client.zRem(keys.members(group), consumer).catch(() => {});
        await notifyOthers();
      })();
      return stopped;
    },
    abandon() {
      state = 'stopped';
      clearTimeout(timer);
      for (const h of [...held.values(), ...finishing.values()]) h.worker.abandon();
      held.clear();
    },
  };
}
