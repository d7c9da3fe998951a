import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AccountIdParams, ProblemSchema } from '../../http/schemas.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import type { ServiceAnswer, ServiceClient } from '../../platform/remote/service-client.ts';
import { FALLBACK_QUOTE, type AccountRecord, type AccountView, type Quote } from './account.ts';
import { AccountViewSchema } from './routes.ts';

export interface GatewayDeps {
  /** The accounts-data service's instances: the account and its events. Not optional: without it, 503. */
  data: ServiceClient;
  /** The images service's instances: without them, `imageData: null` and `degraded: ["images"]`. */
  images: ServiceClient;
  /** The quotes service's instances: without them, the fallback quote and `degraded: ["quotes"]`. */
  quotes: ServiceClient;
  /** This process's INSTANCE_NAME. */
  instance: string;
  imagesTimeoutMs: number;
  quotesTimeoutMs: number;
}

const errors = { 400: ProblemSchema, 404: ProblemSchema, 503: ProblemSchema };

/** A part the answer can do without: its value, or undefined when its service failed or was late. */
async function optional<T>(call: Promise<ServiceAnswer<T>>): Promise<ServiceAnswer<T> | undefined> {
  try {
    const answer = await call;
    return answer.status === 200 ? answer : undefined;
  } catch {
    return undefined;
  }
}

/** Sends a downstream answer on as it came: status, Retry-After, body (problem+json included). */
function relay(reply: FastifyReply, answer: ServiceAnswer<unknown>) {
  const type = answer.headers['content-type'];
  const retryAfter = answer.headers['retry-after'];
  if (retryAfter !== undefined) reply.header('retry-after', retryAfter);
  reply.code(answer.status);
  if (typeof type === 'string') reply.type(type);
  return reply.send(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
}

/**
 * The accounts gateway of the split deployment (ROLE=accounts): GET /accounts/:id composed of the accounts-data,
 * images and quotes services, called at the same time under the request's deadline; the other accounts routes
 * and PUT /accounts/:id/image passed on to the service that owns them. Same answers as the one-process mode.
 */
export function gatewayRoutes(deps: GatewayDeps) {
  return (root: FastifyInstance): void => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();

    app.get(
      '/accounts/:id',
      {
        schema: {
          tags: ['accounts'],
          summary: 'An account with its events, image and a quote, from the data, images and quotes services',
          params: AccountIdParams,
          response: { 200: AccountViewSchema, ...errors },
        },
      },
      async (request): Promise<AccountView> => {
        const id = request.params.id.toLowerCase();
        const parts = new AbortController();
        const [record, image, quote] = await Promise.all([
          deps.data
            .request<AccountRecord>({ path: `/internal/accounts/${id}`, signal: parts.signal })
            .catch((error: unknown) => {
              parts.abort();
              throw error;
            }),
          optional(
            deps.images.request<{ imageData: { url: string } | null; servedBy: string }>({
              path: `/internal/images/${id}`,
              deadlineMs: deps.imagesTimeoutMs,
              signal: parts.signal,
            }),
          ),
          optional(
            deps.quotes.request<Quote & { servedBy: string }>({
              path: '/quotes/random',
              deadlineMs: deps.quotesTimeoutMs,
              signal: parts.signal,
            }),
          ),
        ]);
        if (record.status === 404)
          throw new AppError('ACCOUNT.NOT_FOUND', `account ${id} does not exist`, { details: { id } });
        if (record.status !== 200)
          throw new AppError('DEPENDENCY.UNAVAILABLE', `accounts-data answered ${record.status}`, {
            details: { dependency: deps.data.name, reason: 'failed', attempts: record.attempts },
          });
        const degraded = [...(image ? [] : ['images']), ...(quote ? [] : ['quotes'])];
        const { servedBy: quoteBy, ...quoted } = quote?.body ?? { ...FALLBACK_QUOTE, servedBy: undefined };
        return {
          id: record.body.id,
          name: record.body.name,
          events: record.body.events,
          imageData: image ? image.body.imageData : null,
          quote: quoted,
          servedBy: {
            gateway: deps.instance,
            account: record.body.servedBy,
            ...(image ? { image: image.body.servedBy } : {}),
            ...(quoteBy === undefined ? {} : { quote: quoteBy }),
          },
          ...(degraded.length > 0 ? { degraded } : {}),
        };
      },
    );

    const pass =
      (client: ServiceClient, method: 'POST' | 'PUT' | 'GET', idempotent: (h: Headers) => boolean) =>
      async (
        request: { url: string; body?: unknown; headers: Record<string, string | string[] | undefined> },
        reply: FastifyReply,
      ) => {
        const key = request.headers['idempotency-key'];
        const answer = await client.request({
          method,
          path: request.url,
          ...(request.body === undefined ? {} : { body: request.body }),
          headers: typeof key === 'string' ? { 'idempotency-key': key } : {},
          idempotent: idempotent(new Headers(typeof key === 'string' ? { 'idempotency-key': key } : {})),
        });
        return relay(reply, answer);
      };
    const summary = (what: string, service: string) => ({
      tags: ['accounts'],
      summary: `${what} (passed on to ${service})`,
    });

    // A creation is sent again only with an Idempotency-Key (the data service then answers it once).
    app.post(
      '/accounts',
      { schema: { ...summary('Create an account', 'accounts-data'), response: errors } },
      pass(deps.data, 'POST', (h) => h.has('idempotency-key')),
    );
    // A rename records an event each time it runs: it is not sent again once it may have reached the data service
    // (a refused connection, which reached nothing, still goes to another instance).
    app.put(
      '/accounts/:id',
      { schema: { ...summary('Rename an account', 'accounts-data'), params: AccountIdParams, response: errors } },
      pass(deps.data, 'PUT', () => false),
    );
    app.get(
      '/accounts',
      {
        schema: {
          ...summary('Event counts per account name starting with a prefix', 'accounts-data'),
          querystring: Type.Object({}, { additionalProperties: true }),
          response: errors,
        },
      },
      pass(deps.data, 'GET', () => true),
    );
    app.put(
      '/accounts/:id/image',
      { schema: { ...summary("Set an account's image", 'images'), params: AccountIdParams, response: errors } },
      pass(deps.images, 'PUT', () => true),
    );
  };
}
