import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TransactionFn } from '../../platform/db/transaction.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import { upsertAccountImage } from './images-repository.ts';
import { publish } from '../../platform/context/events.ts';
import { ImageChanged } from './events.ts';
import { AccountIdParams, ProblemSchema } from '../../http/schemas.ts';

export interface ImagesDeps {
  transaction: TransactionFn;
  /** Port into the accounts context: does this account exist? */
  accountExists: (accountId: string) => Promise<boolean>;
  /** Called after the image's transaction committed (the accounts read cache drops its entry). */
  afterImageChanged: (accountId: string) => Promise<void>;
  /** An account's image (the port `images.lookup`). */
  find: (accountId: string, signal: AbortSignal) => Promise<{ url: string } | null>;
  /** This process's INSTANCE_NAME, for `servedBy`. */
  instance: string;
}

const ImageBody = Type.Object(
  {
    url: Type.String({
      minLength: 1,
      maxLength: 2000,
      pattern: '^[hH][tT][tT][pP][sS]?://[^\\s]+$',
      description: 'an http or https URL',
    }),
  },
  { additionalProperties: false },
);

function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname.length > 0;
  } catch {
    return false;
  }
}

/** PUT /accounts/:id/image, GET /internal/images/:id */
export function imagesRoutes(deps: ImagesDeps) {
  return (root: FastifyInstance): void => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();
    app.get(
      '/internal/images/:id',
      {
        schema: {
          tags: ['internal'],
          summary: "An account's image (null when it has none), and the instance that read it",
          params: AccountIdParams,
          response: {
            200: Type.Object({
              imageData: Type.Union([Type.Object({ url: Type.String() }), Type.Null()]),
              servedBy: Type.String(),
            }),
            400: ProblemSchema,
            503: ProblemSchema,
          },
        },
      },
      async (request, reply) => {
        // The caller hung up (its own deadline passed): the query is cancelled.
        const controller = new AbortController();
        reply.raw.once('close', () => controller.abort());
        const imageData = await deps.find(request.params.id.toLowerCase(), controller.signal);
        return { imageData, servedBy: deps.instance };
      },
    );

    app.put(
      '/accounts/:id/image',
      {
        schema: {
          tags: ['images'],
          summary: "Set an account's image",
          params: AccountIdParams,
          body: ImageBody,
          response: {
            200: Type.Object({ accountId: Type.String(), url: Type.String() }),
            400: ProblemSchema,
            404: ProblemSchema,
            503: ProblemSchema,
          },
        },
      },
      async (request) => {
        const { id } = request.params;
        const { url } = request.body;
        if (!isHttpUrl(url))
          throw new AppError('REQUEST.INVALID', 'body.url must be an http or https URL', { details: { field: 'url' } });
        if (!(await deps.accountExists(id)))
          throw new AppError('ACCOUNT.NOT_FOUND', `account ${id} does not exist`, { details: { id } });
        const image = await deps.transaction({ label: 'images.set' }, async (tx) => {
          const set = await upsertAccountImage(tx, id, url);
          // Other instances drop their cached view of the account when this event reaches them.
          await publish(tx, ImageChanged, set.accountId, { accountId: set.accountId, url: set.url });
          return set;
        });
        await deps.afterImageChanged(id);
        return image;
      },
    );
  };
}
