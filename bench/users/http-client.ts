import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { encodeCursor } from '../../src/platform/pagination/cursor.ts';

/** A creation as the benchmark sends it: POST /users with a profile and a starting score. */
export interface CreationInput {
  username: string;
  score: number;
  firstname: string;
  lastname: string;
}

/** A user as GET /users returns it (the fields the benchmark compares). */
export interface ListedUser {
  id: number;
  username: string;
  score: number;
  profile: { firstname: string; lastname: string };
}

export interface UsersClient {
  /** POST /users; resolves with the new id and the time until the 201 body was read, throws on any other answer. */
  create(input: CreationInput): Promise<{ id: number; ms: number }>;
  /** GET /users?limit=`limit` after user `afterId` (0: the first page), timed until the body was read. */
  page(afterId: number, limit: number): Promise<{ items: ListedUser[]; ms: number }>;
  close(): Promise<void>;
}

/**
 * A keep-alive HTTP client (undici) for one stratum server, with `connections` sockets so a concurrent load
 * queues on the server, not in the client.
 */
export function usersClient(baseUrl: string, connections: number): UsersClient {
  const pool = new Pool(baseUrl, { connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 120_000 });
  return {
    async create(input) {
      const t0 = performance.now();
      const response = await pool.request({
        method: 'POST',
        path: '/users',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          username: input.username,
          score: input.score,
          profile: { firstname: input.firstname, lastname: input.lastname },
        }),
      });
      const text = await response.body.text();
      const ms = performance.now() - t0;
      if (response.statusCode !== 201) throw new Error(`POST /users answered ${response.statusCode}: ${text}`);
      return { id: (JSON.parse(text) as { id: number }).id, ms };
    },
    async page(afterId, limit) {
      const cursor = afterId > 0 ? `&cursor=${encodeCursor({ id: afterId })}` : '';
      const t0 = performance.now();
      const response = await pool.request({ method: 'GET', path: `/users?limit=${limit}${cursor}` });
      const text = await response.body.text();
      const ms = performance.now() - t0;
      if (response.statusCode !== 200) throw new Error(`GET /users answered ${response.statusCode}: ${text}`);
      return { items: (JSON.parse(text) as { items: ListedUser[] }).items, ms };
    },
    close: () => pool.close(),
  };
}
