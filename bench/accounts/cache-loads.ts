/**
 * How many times a stratum instance has read an account view from the databases so far (a cache miss that
 * loaded), from its /metrics. The difference over a run tells whether the cached target was served from
 * memory and the uncached one from PostgreSQL.
 */
export async function readCacheLoads(baseUrl: string): Promise<number> {
  const match = /^stratum_cache_loads_total\{cache="accounts"\} (\d+)$/m.exec(await readMetrics(baseUrl));
  // The counter appears with its first load; before that there is no line for it.
  return match ? Number(match[1]) : 0;
}

/**
 * How many GET `route` requests a service has answered with 200 so far, from its /metrics: on the split
 * deployment's accounts-data, `/internal/accounts/:id` counts the account reads that reached PostgreSQL (that
 * route has no cache), as readCacheLoads does in one process.
 */
export async function readRouteAnswers(baseUrl: string, route: string): Promise<number> {
  const prefix = 'stratum_http_request_duration_seconds_count{';
  let total = 0;
  for (const line of (await readMetrics(baseUrl)).split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const labels = line.slice(prefix.length, line.lastIndexOf('}'));
    if (labels.includes('method="GET"') && labels.includes(`route="${route}"`) && labels.includes('status="200"'))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

function readMetrics(baseUrl: string): Promise<string> {
  return fetch(`${baseUrl}/metrics`)
    .then((response) => response.text())
    .catch((error: unknown) => {
      throw new Error(
        `cannot read ${baseUrl}/metrics: ${(error as Error).message} (${String((error as Error).cause ?? 'no cause')})`,
        { cause: error },
      );
    });
}
