import autocannon from 'autocannon';

/** What one create-order load run saw. */
export interface CreateRun {
  seconds: number;
  /** 201 answers: orders created. */
  created: number;
  /** Response time of every 201, in milliseconds. */
  latenciesMs: number[];
  /** Answers other than 201, by status. */
  rejected: Map<number, number>;
  /** Connection errors and timeouts. */
  errors: number;
}

/**
 * A random order of 1 to 3 items for one of a million customers (so every bucket, hence every shard, gets its
 * share): what a POST /orders body looks like in the benchmark.
 */
export function randomOrderBody(): string {
  const items = Array.from({ length: 1 + Math.floor(Math.random() * 3) }, () => ({
    productId: 1 + Math.floor(Math.random() * 5000),
    quantity: 1 + Math.floor(Math.random() * 3),
    price: `${1 + Math.floor(Math.random() * 99)}.${String(Math.floor(Math.random() * 100)).padStart(2, '0')}`,
  }));
  return JSON.stringify({ customerId: 1 + Math.floor(Math.random() * 1_000_000), items });
}

/**
 * Closed-model POST /orders load with autocannon: `connections` keep-alive connections, one request in flight
 * on each, each with a new random order.
 */
export function runCreateLoad(options: { baseUrl: string; connections: number; seconds: number }): Promise<CreateRun> {
  const run: CreateRun = { seconds: 0, created: 0, latenciesMs: [], rejected: new Map(), errors: 0 };
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.baseUrl,
        connections: options.connections,
        pipelining: 1,
        duration: options.seconds,
        requests: [
          {
            method: 'POST',
            path: '/orders',
            headers: { 'content-type': 'application/json' },
            setupRequest: (request) => ({ ...request, body: randomOrderBody() }),
          },
        ],
      },
      (error, result) => {
        if (error) return reject(error);
        run.seconds = result.duration;
        run.errors = result.errors;
        resolve(run);
      },
    );
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status === 201) {
        run.created++;
        run.latenciesMs.push(ms);
      } else {
        run.rejected.set(status, (run.rejected.get(status) ?? 0) + 1);
      }
    });
  });
}
