/**
 * How many times a stratum instance has read an account view from the databases so far (a cache miss that
 * loaded), from its /metrics. The difference over a run tells whether the cached target was served from
 * memory and the uncached one from PostgreSQL.
 */
export async function readCacheLoads(baseUrl: string): Promise<number> {
  const text = await fetch(`${baseUrl}/metrics`)
    .then((response) => response.text())
    .catch((error: unknown) => {
      throw new Error(
        `cannot read ${baseUrl}/metrics: ${(error as Error).message} (${String((error as Error).cause ?? 'no cause')})`,
        { cause: error },
      );
    });
  const match = /^stratum_cache_loads_total\{cache="accounts"\} (\d+)$/m.exec(text);
  // The counter appears with its first load; before that there is no line for it.
  return match ? Number(match[1]) : 0;
}
