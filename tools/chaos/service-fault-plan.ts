/** The fault plans of `chaos services`. */
export const SERVICES_FAULTS = ['one-of-two', 'all-quotes'] as const;
export type ServicesFault = (typeof SERVICES_FAULTS)[number];

export function isServicesFault(name: string): name is ServicesFault {
  return (SERVICES_FAULTS as readonly string[]).includes(name);
}

/** One fault of a plan: which instances are SIGKILLed when, and when they are started again (seconds from the start). */
export interface PlannedFault {
  /** How the report names it: `quotes-1`, or `quotes-1 + quotes-2`. */
  label: string;
  /** The dependency of the gateway the instances belong to. */
  dependency: 'quotes' | 'images';
  targets: readonly string[];
  killAtS: number;
  restartAtS: number;
}

/** Seconds between one fault's restart and the next fault's kill in `one-of-two`. */
const GAP_S = 5;

/**
 * The faults of a plan. `one-of-two`: the first quotes instance killed at `atS` and restarted `forS` later, then,
 * `GAP_S` after, the first images instance for `forS`, so each dependency always keeps one instance. `all-quotes`:
 * every quotes instance killed at `atS` and restarted `forS` later.
 * @example planServiceFaults('one-of-two', { atS: 20, forS: 20, quotes: ['quotes-1', 'quotes-2'], images: ['images-1', 'images-2'] })
 *          // quotes-1 20..40 s, images-1 45..65 s
 */
export function planServiceFaults(
  fault: ServicesFault,
  options: { atS: number; forS: number; quotes: readonly string[]; images: readonly string[] },
): PlannedFault[] {
  const { atS, forS, quotes, images } = options;
  if (fault === 'all-quotes')
    return [{ label: quotes.join(' + '), dependency: 'quotes', targets: quotes, killAtS: atS, restartAtS: atS + forS }];
  const imagesAt = atS + forS + GAP_S;
  return [
    { label: quotes[0]!, dependency: 'quotes', targets: [quotes[0]!], killAtS: atS, restartAtS: atS + forS },
    { label: images[0]!, dependency: 'images', targets: [images[0]!], killAtS: imagesAt, restartAtS: imagesAt + forS },
  ];
}

/** One line saying what a plan does, for the report. */
export function describeFaults(faults: readonly PlannedFault[]): string {
  return faults.map((f) => `${f.label} SIGKILLed at ${f.killAtS} s, restarted at ${f.restartAtS} s`).join('; ');
}
