import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Quote } from './quotes.ts';

export const QuoteSchema = Type.Object({
  quote: Type.String(),
  language: Type.String(),
  ipAddress: Type.String({ description: 'the address of the instance that chose it' }),
  servedBy: Type.String({ description: 'the instance that answered (INSTANCE_NAME)' }),
});

/** GET /quotes/random */
export function quotesRoutes(deps: { pick: () => Quote; instance: string }) {
  return (root: FastifyInstance): void => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();
    app.get(
      '/quotes/random',
      {
        schema: {
          tags: ['quotes'],
          summary: 'A random quote, with its language and the instance that served it',
          response: { 200: QuoteSchema },
        },
      },
      async () => ({ ...deps.pick(), servedBy: deps.instance }),
    );
  };
}
