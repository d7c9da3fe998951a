/** A quote as the quotes service answers it: the text, its language, and the address of the instance that chose it. */
export interface Quote {
  quote: string;
  language: string;
  ipAddress: string;
}

/** The quotes this service ships: the same list on every instance, chosen from at random. */
export const QUOTES: ReadonlyArray<Omit<Quote, 'ipAddress'>> = Object.freeze([
  { quote: 'Simplicity is prerequisite for reliability.', language: 'en' },
  { quote: 'Premature optimization is the root of all evil.', language: 'en' },
  {
    quote: 'There are only two hard things in computer science: cache invalidation and naming things.',
    language: 'en',
  },
  { quote: 'Make it work, make it right, make it fast.', language: 'en' },
  { quote: 'Einfachheit ist die Voraussetzung für Zuverlässigkeit.', language: 'de' },
  { quote: 'Wer misst, misst Mist.', language: 'de' },
  { quote: 'La simplicité est la sophistication suprême.', language: 'fr' },
  { quote: 'Cent fois sur le métier remettez votre ouvrage.', language: 'fr' },
  { quote: 'Lo perfecto es enemigo de lo bueno.', language: 'es' },
  { quote: 'Chi va piano va sano e va lontano.', language: 'it' },
  { quote: 'Festina lente.', language: 'la' },
  { quote: 'Beter ten halve gekeerd dan ten hele gedwaald.', language: 'nl' },
  { quote: 'Devagar se vai ao longe.', language: 'pt' },
  { quote: 'Mäßigung ist die Mutter der Weisheit.', language: 'de' },
  { quote: 'Rome ne s’est pas faite en un jour.', language: 'fr' },
  { quote: 'Measure twice, cut once.', language: 'en' },
]);

/** The port `quotes.random`: one quote, chosen at random. */
export type RandomQuote = (signal: AbortSignal) => Promise<Quote & { servedBy: string }>;

/**
 * A random quote from the shipped list, tagged with the address it is served from.
 * @example const pick = pickQuote('127.0.0.1', Math.random); pick().quote;
 */
export function pickQuote(ipAddress: string, random: () => number): () => Quote {
  return () => {
    const chosen = QUOTES[Math.min(QUOTES.length - 1, Math.floor(random() * QUOTES.length))]!;
    return { ...chosen, ipAddress };
  };
}
