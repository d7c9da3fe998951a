import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { createLogReads } from '../../src/platform/messaging/postgres/log-reads.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const NS = 'readstest';
const GROUP = 'g';

/** Partitions 0-3 leased to `me`, 4 to someone else; ten events in each partition. */
async function seed(): Promise<Map<number, string[]>> {
  await db.sql`insert into messaging.positions (namespace, group_name, partition, position, lease_owner, lease_until)
    select ${NS}, ${GROUP}, p, 0, case when p = 4 then 'other' else 'me' end, now() + interval '1 minute' from generate_series(0, 4) p`;
  const seqs = new Map<number, string[]>();
  for (let i = 0; i < 50; i++) {
    const partition = i % 5;
    const [row] = await db.sql<{ seq: string }[]>`insert into messaging.log (namespace, partition, event)
      values (${NS}, ${partition}, ${db.sql.json({ id: `e${i}`, n: i } as never)}) returning seq`;
    seqs.set(partition, [...(seqs.get(partition) ?? []), row!.seq]);
  }
  return seqs;
}

describe('the PostgreSQL log reads of one consumer', () => {
  it('reads and advances what several partitions ask for meanwhile in one statement, each partition getting its own next batch', async () => {
    const seqs = await seed();
    let statements = 0;
    const counting = ((...args: unknown[]) => {
      statements++;
      return (db.sql as unknown as (...a: unknown[]) => unknown)(...args);
    }) as unknown as Sql;
    const reads = createLogReads({
      sql: counting,
      namespace: NS,
      group: GROUP,
      consumerId: 'me',
      leaseMs: 10_000,
      batchSize: 4,
    });

    const [zero, one, two, three] = await Promise.all([
      reads.read(0),
      reads.read(1),
      reads.advanceAndRead(2, seqs.get(2)![5]!),
      reads.read(3),
    ]);
    expect(statements).toBe(2); // the first alone, the three asked while it ran together
    expect(zero.map((r) => r.seq)).toEqual(seqs.get(0)!.slice(0, 4));
    expect(one.map((r) => r.seq)).toEqual(seqs.get(1)!.slice(0, 4));
    expect(two.map((r) => r.seq)).toEqual(seqs.get(2)!.slice(6, 10));
    expect(three.map((r) => (r.event as unknown as { n: number }).n)).toEqual([3, 8, 13, 18]);
    const [position] = await db.sql<{ position: string }[]>`select position::text from messaging.positions
      where namespace = ${NS} and group_name = ${GROUP} and partition = 2`;
    expect(position!.position).toBe(seqs.get(2)![5]);

    // Caught up: nothing more to read; the position is kept.
    expect(await reads.advanceAndRead(2, seqs.get(2)!.at(-1)!)).toEqual([]);
  });

  it('reads nothing of a partition leased to another consumer, and does not advance it', async () => {
    const reads = createLogReads({
      sql: db.sql,
      namespace: NS,
      group: GROUP,
      consumerId: 'me',
      leaseMs: 10_000,
      batchSize: 4,
    });
    const [other, mine] = await Promise.allSettled([reads.advanceAndRead(4, '999999'), reads.read(0)]);
    expect(other.status).toBe('rejected');
    expect(String((other as PromiseRejectedResult).reason)).toMatch(/lost the lease of partition 4/);
    expect(mine.status).toBe('fulfilled');
    expect(await reads.read(4)).toEqual([]);
    const [position] = await db.sql<{ position: string }[]>`select position::text from messaging.positions
      where namespace = ${NS} and group_name = ${GROUP} and partition = 4`;
    expect(position!.position).toBe('0');
  });

  it('locks the positions it advances in partition order, so a writer locking them in that order never deadlocks with it', async () => {
    const ns = 'lockorder';
    await db.sql`insert into messaging.positions (namespace, group_name, partition, position, lease_owner, lease_until)
      select ${ns}, ${GROUP}, p, 0, 'me', now() + interval '1 minute' from generate_series(2, 0, -1) p`; // stored 2, 1, 0
    await db.sql`analyze messaging.positions`; // planned as on a busy server: a scan in the order rows are stored
    const reads = createLogReads({
      sql: db.sql,
      namespace: ns,
      group: GROUP,
      consumerId: 'me',
      leaseMs: 10_000,
      batchSize: 4,
    });

    const { asked } = await db.sql.begin(async (tx) => {
      await tx`select 1 from messaging.positions where namespace = ${ns} and group_name = ${GROUP} and partition = 1 for update`;
      // The advances of 2 and 1 go together (asked while the read of 0 is in flight), and wait for partition 1.
      const asked = Promise.allSettled([reads.read(0), reads.advanceAndRead(2, '5'), reads.advanceAndRead(1, '7')]);
      await eventually(
        async () =>
          (
            await db.sql`select 1 from pg_stat_activity
        where wait_event_type = 'Lock' and query like '%update messaging.positions%'`
          ).length === 1,
      );
      // Waiting on 1, the statement must not hold 2: this lock is granted at once instead of a deadlock.
      await tx`update messaging.positions set lease_until = now() + interval '1 minute'
        where namespace = ${ns} and group_name = ${GROUP} and partition = 2`;
      return { asked }; // settles once this transaction has let partition 1 go
    });
    const outcome = await asked;
    expect(outcome.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    const positions = await db.sql<
      { partition: number; position: string }[]
    >`select partition, position::text from messaging.positions
      where namespace = ${ns} and group_name = ${GROUP} order by partition`;
    expect(positions.map((p) => p.position)).toEqual(['0', '7', '5']);
  });
});

async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('the condition did not come true in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
