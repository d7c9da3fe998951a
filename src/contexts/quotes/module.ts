import type { Config } from '../../config/config.ts';
import type { ContextModule } from '../../platform/context/context-module.ts';
import { pickQuote, type RandomQuote } from './quotes.ts';
import { quotesRoutes } from './routes.ts';

/**
 * Quotes: a random quote from the list it ships, with its language and the instance that chose it. No database.
 * In one process it is the port `quotes.random` and `GET /quotes/random`; in the split deployment (ROLE=quotes)
 * the same routes are a service of their own, and the accounts gateway reaches it over HTTP.
 */
export const quotesModule: ContextModule<Config> = {
  name: 'quotes',
  errors: {},
  events: [],
  start(platform) {
    const pick = pickQuote(platform.config.host, Math.random);
    const random: RandomQuote = async () => ({ ...pick(), servedBy: platform.instance });
    return {
      routes: quotesRoutes({ pick, instance: platform.instance }),
      ports: { 'quotes.random': random },
    };
  },
};
