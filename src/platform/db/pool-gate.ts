import { AppError } from '../errors/app-error.ts';
import { currentDeadline, currentHoldings } from './deadline-scope.ts';

/** Frees a permit; calling it again does nothing. */
export type Permit = () => void;

export interface PoolGateState {
  name: string;
  max: number;
  /** Callers holding a connection (a plain query running, a reserved connection, an open transaction). */
  inUse: number;
  /** Callers waiting for one. */
  waiting: number;
  /** Callers refused since the pool opened (their deadline passed while they waited). */
  refused: number;
  /** When the last caller was refused (epoch ms), if ever. */
  lastRefusedAt: number | undefined;
}

/**
 * The admission of one pool: at most `max` callers hold a connection, the others wait in arrival order, each
 * only until its deadline. postgres.js itself queues without a limit in time; with every caller admitted here
 * first, its own queue stays empty and no wait outlives the caller's deadline.
 */
export interface PoolGate {
  /** Waits for a connection of the pool until `deadlineAt`; then DB.POOL_EXHAUSTED (nothing has run). */
  acquire(deadlineAt: number): Promise<Permit>;
  state(): PoolGateState;
}

interface Waiter {
  grant: (permit: Permit) => void;
  timer: NodeJS.Timeout;
}

/**
 * @example const gate = createPoolGate({ name: 'shard-0', max: 4, now: Date.now });
 * const release = await gate.acquire(Date.now() + 2000); try { ... } finally { release(); }
 */
export function createPoolGate(options: { name: string; max: number; now: () => number }): PoolGate {
  const { name, max, now } = options;
  let inUse = 0;
  let refused = 0;
  let lastRefusedAt: number | undefined;
  const waiters: Waiter[] = [];

  const permit = (): Permit => {
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const next = waiters.shift();
      if (next) {
        clearTimeout(next.timer);
        next.grant(permit());
      } else {
        inUse -= 1;
      }
    };
  };

  const refuse = (): AppError => {
    refused += 1;
    lastRefusedAt = now();
    return new AppError('DB.POOL_EXHAUSTED', `all ${max} connections of pool ${name} stayed busy until the deadline`, {
      details: { pool: name },
    });
  };

  return {
    acquire(deadlineAt) {
      if (inUse < max) {
        inUse += 1;
        return Promise.resolve(permit());
      }
      const left = deadlineAt - now();
      if (left <= 0) return Promise.reject(refuse());
      return new Promise<Permit>((resolve, reject) => {
        const waiter: Waiter = {
          grant: resolve,
          timer: setTimeout(() => {
            const at = waiters.indexOf(waiter);
            if (at >= 0) waiters.splice(at, 1);
            reject(refuse());
          }, left),
        };
        waiters.push(waiter);
      });
    },
    state: () => ({ name, max, inUse, waiting: waiters.length, refused, lastRefusedAt }),
  };
}

/**
 * The pools among `pools` (made by gatePool()) that refused a caller at `since` or later: a pool that keeps
 * refusing is one its callers cannot get through, whatever the database says.
 * @example const busy = refusingSince([sql, ...shardPools], Date.now() - 5000);
 */
export function refusingSince(pools: readonly object[], since: number): PoolGateState[] {
  return pools
    .map((p) => gates.get(p)?.state())
    .filter((s): s is PoolGateState => s !== undefined && (s.lastRefusedAt ?? -Infinity) >= since);
}

/** The part of a postgres.js query the gate touches: the function that hands it to the pool. */
interface PendingQuery {
  handler: (query: PendingQuery) => void;
  handle: () => unknown;
  cancelled: unknown;
  active: boolean;
  reject: (error: unknown) => void;
}

function isQuery(value: unknown): value is PendingQuery {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PendingQuery).handle === 'function' &&
    typeof (value as PendingQuery).handler === 'function'
  );
}

interface ReservedConnection {
  release(): void;
}

interface GatedPool {
  (...args: unknown[]): unknown;
  begin(...args: unknown[]): Promise<unknown>;
  reserve(): Promise<ReservedConnection>;
  unsafe(...args: unknown[]): unknown;
  file(...args: unknown[]): unknown;
}

const gates = new WeakMap<object, PoolGate>();

/**
 * The gate of a pool made by gatePool(), or undefined.
 * @example const { inUse, waiting } = poolGateOf(sql)!.state();
 */
export function poolGateOf(sql: object): PoolGate | undefined {
  return gates.get(sql);
}

/**
 * Puts `gate` in front of a postgres.js pool: a plain query waits for a permit when it is sent (a fragment
 * never is) and holds it until it settles; `begin()` holds one for the whole transaction; `reserve()` until
 * `release()`. The wait ends at the deadline of the current scope (see withDeadline()), or `defaultWaitMs`
 * from now outside any. A connection reserved in a request's scope is registered with its holdings, so a
 * request cut off at its deadline frees it; the reserved handle then refuses further statements.
 * @example const sql = gatePool(postgres(url, { max: 4 }), createPoolGate({ name: 'main', max: 4, now: Date.now }), 2000, Date.now);
 */
export function gatePool<S extends object>(raw: S, gate: PoolGate, defaultWaitMs: number, now: () => number): S {
  const pool = raw as unknown as GatedPool;
  const deadline = () => currentDeadline() ?? now() + defaultWaitMs;

  const gateQuery = <Q>(query: Q): Q => {
    if (!isQuery(query)) return query;
    const send = query.handler;
    // A query is sent when it is first awaited, maybe outside the scope it was made in: the earlier deadline counts.
    const madeUnder = currentDeadline();
    query.handler = (q) => {
      void gate.acquire(Math.min(deadline(), madeUnder ?? Number.POSITIVE_INFINITY)).then(
        (release) => {
          // Cancelled while it waited: postgres.js has rejected it already.
          if (q.cancelled) return release();
          void Promise.prototype.then.call(q, release, release);
          send(q);
        },
        (error: unknown) => q.reject(error),
      );
    };
    return query;
  };

  const begin = async (...args: unknown[]) => {
    const release = await gate.acquire(deadline());
    try {
      return await pool.begin(...args);
    } finally {
      release();
    }
  };

  const reserve = async () => {
    const release = await gate.acquire(deadline());
    let connection: ReservedConnection;
    try {
      connection = await pool.reserve();
    } catch (error) {
      release();
      throw error;
    }
    return holdReserved(connection, release);
  };

  const gated = new Proxy(raw, {
    apply(target, thisArg, args) {
      return gateQuery(Reflect.apply(target as unknown as (...a: unknown[]) => unknown, thisArg, args));
    },
    get(target, prop, receiver) {
      if (prop === 'begin') return begin;
      if (prop === 'reserve') return reserve;
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'unsafe' || prop === 'file') {
        return (...args: unknown[]) => gateQuery((value as (...a: unknown[]) => unknown).apply(target, args));
      }
      return value;
    },
  });
  gates.set(gated, gate);
  raws.set(gated, raw);
  return gated;
}

/**
 * A reserved connection whose release also frees its permit, once. Registered with the request's holdings: a
 * request cut off frees it (once its running statements settle) and its later statements are refused, so they
 * can never run on a connection that someone else reserved meanwhile.
 */
function holdReserved(connection: ReservedConnection, permit: Permit): ReservedConnection {
  const holdings = currentHoldings();
  const running = new Set<PromiseLike<unknown>>();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    holdings?.delete(release);
    const give = () => {
      connection.release();
      permit();
    };
    if (running.size === 0) give();
    else void Promise.allSettled([...running]).then(give);
  };
  holdings?.add(release);
  const track = <Q>(query: Q): Q => {
    if (!isQuery(query)) return query;
    const send = query.handler;
    query.handler = (q) => {
      if (released)
        return q.reject(
          new AppError('DB.UNAVAILABLE', 'this reserved connection was given back when its request was cut off'),
        );
      // Out of the running set as soon as it settles, before its caller's await goes on.
      const settled: PromiseLike<unknown> = Promise.prototype.then.call(
        q,
        () => {
          running.delete(settled);
        },
        () => {
          running.delete(settled);
        },
      );
      running.add(settled);
      send(q);
    };
    return query;
  };
  return new Proxy(connection, {
    apply(target, thisArg, args) {
      return track(Reflect.apply(target as unknown as (...a: unknown[]) => unknown, thisArg, args));
    },
    get(target, prop, receiver) {
      if (prop === 'release') return release;
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'unsafe' || prop === 'file') {
        return (...args: unknown[]) => track((value as (...a: unknown[]) => unknown).apply(target, args));
      }
      return value;
    },
  });
}

const raws = new WeakMap<object, object>();

/**
 * Takes a permit of a gated pool for work that manages its connection itself (transaction()): waits until
 * `deadlineAt` (then DB.POOL_EXHAUSTED), and returns the pool behind the gate, on which that one caller's
 * begin() or reserve() then finds a connection at once. An ungated pool is returned as it is, with no permit.
 * @example const { pool, release } = await admit(sql, deadlineAt); try { await pool.begin(...) } finally { release(); }
 */
export async function admit<S extends object>(sql: S, deadlineAt: number): Promise<{ pool: S; release: Permit }> {
  const gate = gates.get(sql);
  if (!gate) return { pool: sql, release: () => {} };
  return { pool: raws.get(sql) as S, release: await gate.acquire(deadlineAt) };
}
