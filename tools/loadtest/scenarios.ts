import { seededAccountId, seededAccountName } from '../../src/contexts/accounts/seed-ids.ts';
import type { RequestPlan } from './http-target.ts';
import { ordersContention } from './orders-contention.ts';
import { ordersMixed } from './orders-mixed.ts';
import { randomInt, type Random } from './random.ts';
import { readBackAccounts } from './read-back-accounts.ts';
import { pickWeighted, type Mix, type Scenario, type ScenarioSettings } from './scenario.ts';

export type { Scenario, ScenarioSettings } from './scenario.ts';

export const SCENARIO_NAMES = ['accounts-read', 'accounts-mixed', 'orders-mixed', 'orders-contention'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export function isScenarioName(name: string): name is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(name);
}

function readSeeded(random: Random, accounts: number): RequestPlan {
  return {
    kind: 'read',
    method: 'GET',
    path: `/accounts/${seededAccountId(randomInt(random, accounts))}`,
    expectStatus: 200,
  };
}

/** GET /accounts/:id of random seeded accounts, as the source system's Gatling read test. */
function accountsRead(settings: ScenarioSettings): Scenario {
  return {
    name: 'accounts-read',
    kinds: ['read'],
    nextRequest: (random) => readSeeded(random, settings.accounts),
  };
}

const ACCOUNTS_MIX: Mix = [
  ['read', 70],
  ['create', 15],
  ['update', 10],
  ['query', 5],
];

function isCreatedAccount(body: unknown): body is { id: string; name: string } {
  const b = body as { id?: unknown; name?: unknown } | null | undefined;
  return typeof b?.id === 'string' && typeof b.name === 'string';
}

/**
 * About 70% reads of seeded accounts, 15% creations, 10% updates, 5% name-prefix queries. Updates keep
 * each account's name, so the seeded `Person_<i>` set stays valid for the next run's reads and queries;
 * they still append an UPDATED event, which is the write being measured.
 */
function accountsMixed(settings: ScenarioSettings): Scenario {
  const created: { id: string; name: string }[] = [];
  let creations = 0;
  const plans: Record<string, (random: Random) => RequestPlan> = {
    read: (random) => readSeeded(random, settings.accounts),
    create: () => {
      creations += 1;
      return {
        // The key lets the server settle a creation whose commit it lost sight of (a failover) without a duplicate.
        kind: 'create',
        method: 'POST',
        path: '/accounts',
        body: { name: `Loadtest_${settings.runTag}_${creations}` },
        expectStatus: 201,
        headers: { 'idempotency-key': `loadtest-${settings.runTag}-${creations}` },
        accept: (body) => {
          if (!isCreatedAccount(body)) return false;
          created.push({ id: body.id, name: body.name });
          return true;
        },
      };
    },
    update: (random) => {
      // Draw the coin even when nothing is created yet, so a seed always consumes the same draws.
      const coin = random();
      const useCreated = created.length > 0 && coin < 0.5;
      const i = randomInt(random, useCreated ? created.length : settings.accounts);
      const target = useCreated ? created[i]! : { id: seededAccountId(i), name: seededAccountName(i) };
      return {
        kind: 'update',
        method: 'PUT',
        path: `/accounts/${target.id}`,
        body: { name: target.name },
        expectStatus: 200,
      };
    },
    query: (random) => {
      // A prefix of a seeded name, 1 to 3 digits long: from thousands of matches down to a handful.
      const digits = String(randomInt(random, settings.accounts)).slice(0, 1 + randomInt(random, 3));
      return {
        kind: 'query',
        method: 'GET',
        path: `/accounts?namePrefix=${encodeURIComponent(seededAccountName(Number(digits)))}&limit=100`,
        expectStatus: 200,
      };
    },
  };
  return {
    name: 'accounts-mixed',
    kinds: ACCOUNTS_MIX.map(([kind]) => kind),
    nextRequest: (random) => plans[pickWeighted(ACCOUNTS_MIX, random())]!(random),
    readBack: (target) =>
      readBackAccounts(
        target,
        created.map((account) => account.id),
      ),
    createdAccountIds: () => created.map((account) => account.id),
  };
}

export function createScenario(name: ScenarioName, settings: ScenarioSettings): Scenario {
  if (name === 'accounts-read') return accountsRead(settings);
  if (name === 'accounts-mixed') return accountsMixed(settings);
  if (name === 'orders-contention') return ordersContention(settings);
  return ordersMixed(settings);
}
