import { expect } from 'vitest';
import type { App } from '../../src/http/app.ts';

/** A user as GET /users shows it, reduced to what the score comparisons look at. */
export interface ScoredUser {
  id: number;
  username: string;
  score: number;
  updated: string | null;
}

/** Every user through GET /users, 500 a page: what a client sees, in any SCORE_MODE. */
export async function allUsers(app: App): Promise<ScoredUser[]> {
  const users: ScoredUser[] = [];
  let cursor: string | null = null;
  do {
    const res = await app.inject({ url: `/users?limit=500${cursor ? `&cursor=${cursor}` : ''}` });
    expect(res.statusCode, res.body).toBe(200);
    const page = res.json() as { items: ScoredUser[]; nextCursor: string | null };
    users.push(...page.items.map((u) => ({ id: u.id, username: u.username, score: u.score, updated: u.updated })));
    cursor = page.nextCursor;
  } while (cursor);
  return users;
}

/**
 * The bound the deferred mode is held to (docs/decisions/0031): |deferred - eager| <= 1e-12 * magnitude, where a
 * user's magnitude is the score it would have with |initial score| (the sum's condition: the score itself
 * whenever the initial score is not negative). Call once per creation, in creation order, with every user so far.
 */
export function addCreation(magnitudes: number[], initialScore: number): void {
  const n = magnitudes.length;
  if (n > 0) for (let i = 0; i < n; i++) magnitudes[i] = magnitudes[i]! * (1 + 1 / n) + 1;
  magnitudes.push(Math.abs(initialScore));
}

export const SIGNIFICANT = 1e-12;

/** Asserts two readings of the same users agree: same ids, names, `updated` set or not, scores within the bound. */
export function expectSameScores(
  actual: readonly ScoredUser[],
  expected: readonly ScoredUser[],
  magnitude: (user: ScoredUser, index: number) => number,
  context = '',
): void {
  expect(actual.map((u) => [u.id, u.username, u.updated === null])).toEqual(
    expected.map((u) => [u.id, u.username, u.updated === null]),
  );
  const off = expected.flatMap((e, i) => {
    const a = actual[i]!;
    const bound = SIGNIFICANT * Math.max(magnitude(e, i), Number.MIN_VALUE);
    return Math.abs(a.score - e.score) <= bound ? [] : [`${e.username}: ${a.score} vs ${e.score} (bound ${bound})`];
  });
  expect(off, `${context} ${off.length} of ${expected.length} scores beyond 12 significant digits`).toEqual([]);
}
