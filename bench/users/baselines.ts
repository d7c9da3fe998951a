import type { Sql, TxSql } from '../../src/platform/db/connect.ts';
import { actionText, type CreationMethod, type NewUserInput } from './method.ts';

/*
 * The three ways stratum is compared with, straight through postgres.js on one pool, no HTTP. All take the
 * same lock as stratum, insert the user, its profile and the action, and give every other user
 * score = trim_scale(1 + score + score / n) with n the number of other users, all in one transaction.
 * They differ only in how the fan-out reaches the database.
 */

async function insertUserAndProfile(tx: TxSql, input: NewUserInput): Promise<{ id: number; username: string }> {
  const [user] = await tx<[{ id: number; username: string }]>`
    insert into users.users (username, score) values (${input.username}, 0) returning id, username`;
  await tx`insert into users.user_profile (user_id, firstname, lastname) values (${user.id}, ${input.firstname}, ${input.lastname})`;
  return user;
}

async function insertAction(tx: TxSql, user: { id: number; username: string }): Promise<void> {
  await tx`insert into users.actions (description) values (${actionText(user.id, user.username)})`;
}

/** The other users' ids, read inside the transaction after the lock, as a row-by-row fan-out needs them. */
async function otherIds(tx: TxSql, newId: number): Promise<number[]> {
  const rows = await tx<{ id: number }[]>`select id from users.users where id <> ${newId}`;
  return rows.map((r) => r.id);
}

const updateOne = (tx: TxSql, id: number, n: number) =>
  tx`update users.users set score = trim_scale(1 + score + score / ${n}::bigint), updated = now() where id = ${id}`;

/** (a) One awaited UPDATE per other user: n round trips inside the transaction. */
export function awaitedPerUser(sql: Sql): CreationMethod {
  return {
    name: '(a) one awaited UPDATE per user',
    async create(input) {
      await sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(8463219666992391026)`;
        const user = await insertUserAndProfile(tx, input);
        const ids = await otherIds(tx, user.id);
        for (const id of ids) await updateOne(tx, id, ids.length);
        await insertAction(tx, user);
      });
    },
  };
}

/** (b) One UPDATE per other user, all issued before any is awaited: postgres.js pipelines them in one round trip. */
export function pipelinedPerUser(sql: Sql): CreationMethod {
  return {
    name: '(b) one UPDATE per user, pipelined',
    async create(input) {
      await sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(8463219666992391026)`;
        const user = await insertUserAndProfile(tx, input);
        const ids = await otherIds(tx, user.id);
        await Promise.all(ids.map((id) => updateOne(tx, id, ids.length)));
        await insertAction(tx, user);
      });
    },
  };
}

/**
 * (c) The bare set-based transaction: begin; the creation lock (the same advisory lock stratum takes); insert user; insert profile; one UPDATE of every other
 * user; insert action; commit. n is counted by the UPDATE itself (an uncorrelated subquery, run once; it
 * sees the new user, hence the - 1).
 */
export function setBasedSql(sql: Sql): CreationMethod {
  return {
    name: '(c) set-based SQL, no HTTP',
    async create(input) {
      await sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(8463219666992391026)`;
        const user = await insertUserAndProfile(tx, input);
        await tx`update users.users
          set score = trim_scale(1 + score + score / (select count(*) - 1 from users.users)), updated = now()
          where id <> ${user.id}`;
        await insertAction(tx, user);
      });
    },
  };
}
