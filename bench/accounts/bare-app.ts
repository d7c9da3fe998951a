import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { seededAccountId } from '../../src/contexts/accounts/seed-ids.ts';

/**
 * What a seeded account's view looks like (the middle of 1 to 5 events, with an image, a quote and who served
 * each part, as one process names itself: its role and pid), built once: the bare route answers with it, so the
 * bytes on the wire match stratum's answers (about 800 with headers: not every seeded account has an image, hence
 * a short quote).
 */
const CONSTANT_VIEW = {
  id: seededAccountId(0),
  name: 'Person_0',
  events: ['CREATED', 'UPDATED', 'UPDATED'].map((eventName, k) => ({
    id: randomUUID(),
    eventName,
    created: new Date(Date.UTC(2025, 0, 1, 0, 0, k + 1)).toISOString(),
  })),
  imageData: { url: 'https://images.stratum.test/person/0.png' },
  quote: { quote: 'Wer misst, misst Mist.', language: 'de', ipAddress: '127.0.0.1' },
  servedBy: { gateway: 'all-1234', account: 'all-1234', image: 'all-1234', quote: 'all-1234' },
};

/**
 * The baseline: Fastify with nothing added (no logger, hooks, schemas or plugins) and one route of the same
 * shape as stratum's, `GET /accounts/:id`, returning the constant view.
 */
export async function buildBareApp(): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get('/accounts/:id', async () => CONSTANT_VIEW);
  await app.ready();
  return app;
}
