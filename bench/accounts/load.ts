import autocannon from 'autocannon';

/** What one autocannon run saw. */
export interface LoadRun {
  seconds: number;
  /** Responses of any status. */
  responses: number;
  /** Response time of every 2xx answer, in milliseconds (sub-millisecond; autocannon's own histogram rounds to whole ms). */
  latenciesMs: number[];
  /** Responses outside 2xx, by status. */
  non2xx: Map<number, number>;
  /** Connection errors and timeouts. */
  errors: number;
  /** Bytes of all 2xx responses, headers included. */
  bytes: number;
  /** 2xx answers with a part standing in (`"degraded"` in the body): cheaper than complete ones. */
  degraded: number;
}

export interface LoadOptions {
  url: string;
  /** Called before every request: the path to GET. */
  nextPath: () => string;
  seconds: number;
  connections: number;
}

/**
 * Closed-model load with autocannon: `connections` keep-alive connections, one request in flight on each
 * (no pipelining), each picking its path just before it sends. Every 2xx body is searched for `"degraded"`
 * (autocannon collects the body anyway; the search is the only added cost, the same for every target).
 */
export function runLoad(options: LoadOptions): Promise<LoadRun> {
  const run: LoadRun = {
    seconds: 0,
    responses: 0,
    latenciesMs: [],
    non2xx: new Map(),
    errors: 0,
    bytes: 0,
    degraded: 0,
  };
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        pipelining: 1,
        duration: options.seconds,
        requests: [
          {
            method: 'GET',
            setupRequest: (request) => ({ ...request, path: options.nextPath() }),
            onResponse: (status, body) => {
              if (status >= 200 && status < 300 && body.includes('"degraded"')) run.degraded++;
            },
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
    instance.on('response', (_client, status, bytes, ms) => {
      run.responses++;
      if (status >= 200 && status < 300) {
        run.latenciesMs.push(ms);
        run.bytes += bytes;
      } else {
        run.non2xx.set(status, (run.non2xx.get(status) ?? 0) + 1);
      }
    });
  });
}
