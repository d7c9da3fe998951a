import { pino } from 'pino';
import { isLoopback, type Config } from '../config/config.ts';
import { adminRoutes } from '../http/admin.ts';
import { createDashboard } from '../http/dashboard/routes.ts';
import { BASE as DATA_BROWSER } from '../http/data-browser/pages.ts';
import { dataBrowserRoutes } from '../http/data-browser/routes.ts';
import { buildApp, type App } from '../http/app.ts';
import { mergeErrorTables, PLATFORM_ERRORS } from '../http/error-statuses.ts';
import {
  createReadCache,
  createRedisTier,
  invalidateOnEvents,
  type InvalidationRule,
  type ReadCache,
} from '../platform/cache/index.ts';
import type {
  ConsumerSpec,
  ContextModule,
  ContextPlatform,
  StartedContext,
} from '../platform/context/context-module.ts';
import type { ConnectTarget, Sql } from '../platform/db/connect.ts';
import { refusingSince } from '../platform/db/pool-gate.ts';
import { checkDatabaseReadiness, describeReadServer } from '../platform/db/replication-status.ts';
import { createTransaction, type TransactionFn } from '../platform/db/transaction.ts';
import { AppError } from '../platform/errors/app-error.ts';
import { deleteExpiredKeys } from '../platform/idempotency/idempotency.ts';
import type { Subscription } from '../platform/messaging/broker.ts';
import { createMetrics } from '../platform/observability/metrics.ts';
import { startTracing, type Tracing } from '../platform/observability/tracing.ts';
import { tracesRoutes } from '../http/traces.ts';
import type { ContextPools } from './context-pools.ts';
import { CONTEXTS } from './contexts.ts';
import { openBroker, startWorkers, type RelayedOutbox, type Workers } from './messaging.ts';
import { connectRedis } from './redis.ts';

/** A pool that refused a caller this recently makes the service not ready. */
const REFUSING_WINDOW_MS = 5000;
/** How often expired idempotency keys are deleted. */
const KEY_SWEEP_MS = 10 * 60_000;

export interface Services {
  app: App;
  /** Transactions on the administrative pool. */
  transaction: TransactionFn;
  /** Closes the app and what it opened (contexts, caches, broker, Redis); not the pools it was given. */
  close(): Promise<void>;
}

export interface ServiceDeps {
  admin: Sql;
  target: ConnectTarget;
  pools: ContextPools;
  applicationName: string;
  /** The contexts to run; default: all of them (contexts.ts). */
  contexts?: readonly ContextModule<Config>[];
  /** Ports of contexts this process does not run, reached over HTTP in the split deployment (deployments.ts). */
  ports?: Readonly<Record<string, unknown>>;
}

/**
 * This process's name in `servedBy`: INSTANCE_NAME, or its role and process id.
 * @example instanceName(config) // 'quotes-2' with INSTANCE_NAME=quotes-2, else 'all-41234'
 */
export function instanceName(config: Config): string {
  return config.instanceName ?? `${config.role}-${process.pid}`;
}

/** `service.name` of this process's spans: `stratum`, or `stratum-<role>` in the split deployment. */
function serviceName(config: Config): string {
  return config.role === 'all' || config.role === 'api' || config.role === 'worker'
    ? 'stratum'
    : `stratum-${config.role}`;
}

/**
 * Starts this process's tracing (once per process) and names the services whose spans its trace pages gather:
 * every instance it may call.
 */
export function startProcessTracing(config: Config): { tracing: Tracing; peers: string[] } {
  const tracing = startTracing({
    serviceName: serviceName(config),
    instance: instanceName(config),
    otlpEndpoint: config.tracing.otlpEndpoint,
    disabled: !config.tracing.enabled,
  });
  const { accountsData, images, quotes } = config.serviceUrls;
  return { tracing, peers: [...new Set([...accountsData, ...images, ...quotes])] };
}

/**
 * Builds a process's services over open pools: metrics, the shared cache tier, every context (started in list
 * order over its platform), the broker with relays and consumers when this process runs workers, and the HTTP
 * app with every context's routes and error codes. Tests use this directly.
 * @example const services = await assembleServices(config, { admin: sql, target: { url }, pools, applicationName: 'stratum-test' });
 */
export async function assembleServices(config: Config, deps: ServiceDeps): Promise<Services> {
  const contexts = deps.contexts ?? CONTEXTS;
  const metrics = createMetrics({ sql: deps.admin, applicationName: deps.applicationName, poolMax: config.poolMax });
  const { tracing, peers } = startProcessTracing(config);
  const logger = pino({ level: config.logLevel });
  const closers: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    // Newest first; one failure does not keep the rest open.
    let first: unknown;
    for (const close of closers.splice(0).reverse())
      await close().catch((error) => {
        first ??= error;
      });
    if (first) throw first;
  };
  const transactionOn = (sql: Sql) =>
    createTransaction({
      sql,
      defaultDeadlineMs: config.txDeadlineMs,
      now: Date.now,
      random: Math.random,
      observer: metrics.transactionObserver,
    });
  try {
    const redis = config.redisUrl ? await connectRedis(config.redisUrl, logger) : undefined;
    if (redis)
      closers.push(async () => {
        if (redis.isOpen) await redis.quit();
      });
    const cacheOf = <T>(name: string): ReadCache<T> =>
      createReadCache<T>({
        namespace: `stratum:${name}`,
        ttlMs: config.cacheTtlMs,
        maxEntries: config.cacheMaxEntries,
        observer: metrics.cacheObserver(name),
        shared: redis
          ? createRedisTier({
              client: redis,
              namespace: `stratum:${name}`,
              ttlMs: config.cacheTtlMs,
              onError: (error, context) =>
                logger.warn(
                  { err: error, ...context },
                  'shared cache tier unavailable; serving from the local tier and the database',
                ),
            })
          : undefined,
      });

    const ports = new Map<string, unknown>(Object.entries(deps.ports ?? {}));
    const instance = instanceName(config);
    const started: Array<{ context: ContextModule<Config>; value: StartedContext; sql: Sql }> = [];
    for (const context of contexts) {
      const own = deps.pools.own[context.name];
      if (context.role && !own)
        throw new TypeError(`context ${context.name} has a role but no pool of its own was opened`);
      const sql = own ?? deps.admin;
      const readSql = context.role
        ? context.role.reads
          ? deps.pools.reads?.own[context.name]
          : undefined
        : deps.pools.reads?.admin;
      const platform: ContextPlatform<Config> = {
        config,
        logger,
        metrics,
        admin: deps.admin,
        target: deps.target,
        applicationName: deps.applicationName,
        instance,
        sql,
        readSql,
        transactionOn,
        cache: cacheOf,
        runsWorkers: config.role !== 'api',
        port<T>(name: string): T {
          if (!ports.has(name)) throw new TypeError(`no context provides the port ${name}`);
          return ports.get(name) as T;
        },
      };
      const value = await context.start(platform);
      if (value.close) closers.push(value.close);
      for (const [name, port] of Object.entries(value.ports ?? {})) {
        if (ports.has(name)) throw new TypeError(`the port ${name} is provided twice (context ${context.name})`);
        ports.set(name, port);
      }
      started.push({ context, value, sql });
    }
    const consumers: ConsumerSpec[] = started.flatMap((s) => [...(s.value.consumers ?? [])]);
    const broker = await openBroker(
      config,
      deps.admin,
      logger,
      consumers.map((c) => c.group),
    );
    closers.push(() => broker.close());

    if (config.role !== 'api') {
      const outboxes: RelayedOutbox[] = [
        { name: 'main', target: deps.target, writers: deps.admin },
        ...started.flatMap((s) => [...(s.value.outboxes ?? [])]),
      ];
      const workers: Workers = await startWorkers(broker, {
        outboxes,
        consumers,
        applicationName: deps.applicationName,
        logger,
        onRelayed: (outbox, count) => metrics.countRelayed(outbox, count),
      });
      closers.push(() => workers.stop());
    }

    // Without Redis, the caches hear of other instances' writes through their events (decision 0017).
    const rules: InvalidationRule[] = started.flatMap((s) => [...(s.value.cacheRules ?? [])]);
    if (!redis && rules.length > 0) {
      const following: Subscription = await invalidateOnEvents({
        follow: (listener) => broker.follow(listener),
        rules,
        onError: (error, event) =>
          logger.warn(
            { err: error, eventId: event.id, type: event.type },
            'cache invalidation: could not read an event',
          ),
      });
      closers.push(() => following.stop());
    }

    // Expired idempotency keys go now and then, on the main database and every other database that keeps them.
    const keyStores = () => [deps.admin, ...started.flatMap((s) => [...(s.value.idempotencyStores?.() ?? [])])];
    const keySweep = setInterval(() => {
      for (const sql of keyStores())
        deleteExpiredKeys(sql).catch((error) =>
          logger.warn({ err: error }, 'deleting expired idempotency keys failed'),
        );
    }, KEY_SWEEP_MS);
    keySweep.unref();
    closers.push(async () => clearInterval(keySweep));

    // What readiness and the metrics watch: every request pool's admission.
    const requestPools = () => [
      deps.admin,
      ...Object.values(deps.pools.own),
      ...(deps.pools.reads ? [deps.pools.reads.admin, ...Object.values(deps.pools.reads.own)] : []),
      ...started.flatMap((s) => [...(s.value.pools?.() ?? [])]),
    ];
    metrics.watchPools(requestPools);
    const readiness = async () => {
      const withReadiness = started.filter((s) => s.value.readiness);
      // Asked at once; the main database's answer comes first (databases on its server fail with it).
      const [primary, reads, ...answers] = await Promise.allSettled([
        checkDatabaseReadiness(deps.admin),
        deps.pools.reads ? describeReadServer(deps.pools.reads.admin) : undefined,
        ...withReadiness.map((s) => s.value.readiness!()),
      ]);
      for (const answer of [primary, reads, ...answers]) if (answer!.status === 'rejected') throw answer!.reason;
      const value = <T>(answer: PromiseSettledResult<T>) => (answer as PromiseFulfilledResult<T>).value;
      const refusing = refusingSince(requestPools(), Date.now() - REFUSING_WINDOW_MS);
      if (refusing.length > 0) {
        throw new AppError(
          'DB.POOL_EXHAUSTED',
          `pool ${refusing.map((p) => p.name).join(', ')} refused callers within the last ${REFUSING_WINDOW_MS / 1000} s`,
          { details: { pools: refusing.map(({ name, max, inUse, waiting }) => ({ name, max, inUse, waiting })) } },
        );
      }
      return {
        ...value(primary!),
        ...(value(reads!) ? { reads: value(reads!) } : {}),
        ...Object.fromEntries(withReadiness.map((s, i) => [s.context.name, value(answers[i]!)])),
      };
    };

    // The console: open on a loopback address, else behind ADMIN_TOKEN (without one: 401 to everything).
    const open = isLoopback(config.host);
    const dashboard = createDashboard({
      metrics,
      token: config.adminToken,
      open,
      browser: DATA_BROWSER,
      sources: {
        admin: deps.admin,
        applicationName: deps.applicationName,
        outboxes: () => [
          { name: 'main', target: deps.target },
          ...started.flatMap((s) => (s.value.outboxes ?? []).map((o) => ({ name: o.name, target: o.target }))),
        ],
        broker,
        groups: consumers.map((c) => c.group),
        runsWorkers: config.role !== 'api',
        redis: redis !== undefined,
        reads: deps.pools.reads?.admin,
        contexts: () =>
          started.flatMap((s) => (s.value.status ? [{ name: s.context.name, status: () => s.value.status!() }] : [])),
      },
    });
    closers.push(() => dashboard.close());
    const browsable = started.flatMap((s) => {
      const spec = s.value.browse?.();
      return spec
        ? [{ name: s.context.name, schemas: [...spec.schemas], databases: spec.databases.map((d) => ({ ...d })) }]
        : [];
    });

    const app = await buildApp({
      bodyLimitBytes: config.bodyLimitBytes,
      requestDeadlineMs: config.txDeadlineMs,
      logger,
      metrics,
      readiness,
      errors: mergeErrorTables([PLATFORM_ERRORS, ...contexts.map((c) => c.errors)]),
      routes: [
        adminRoutes({ token: config.adminToken, deadLetters: broker.deadLetters }),
        dashboard.routes,
        dataBrowserRoutes({ contexts: browsable, token: config.adminToken, open }),
        tracesRoutes({ store: tracing.store, peers, open, token: config.adminToken }),
        ...started.flatMap((s) => (s.value.routes ? [s.value.routes] : [])),
      ],
    });
    return {
      app,
      transaction: transactionOn(deps.admin),
      async close() {
        await app.close();
        await closeAll();
        await tracing.flush().catch(() => {});
      },
    };
  } catch (error) {
    await closeAll().catch(() => {});
    throw error;
  }
}
