import fs from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { BENCH_ORDER_ID } from './tables.ts';
import type { ImportMethod } from './method.ts';

/**
 * stratum itself: the file streamed from disk as the body of a real `POST /orders/:id/items/import` with
 * content-type text/csv (and its length), timed until the JSON answer has been read and checked.
 */
export function stratumHttpImport(baseUrl: string, chunkSize: number): ImportMethod {
  return {
    name: `stratum: POST /orders/:id/items/import, chunkSize=${chunkSize}`,
    async run(files) {
      const url = new URL(`/orders/${BENCH_ORDER_ID}/items/import?chunkSize=${chunkSize}`, baseUrl);
      const answer = await postFile(url, files.items, 'text/csv');
      if (answer.status !== 200) throw new Error(`the import answered ${answer.status}: ${answer.body.slice(0, 500)}`);
      const result = JSON.parse(answer.body) as { imported: number; rejected: unknown[] };
      if (result.imported !== files.rows || result.rejected.length > 0)
        throw new Error(`the import answered ${answer.body.slice(0, 500)}`);
    },
  };
}

/** POSTs a file as a stream (never read whole), and reads the whole answer. */
async function postFile(url: URL, file: string, contentType: string): Promise<{ status: number; body: string }> {
  const request = http.request(url, {
    method: 'POST',
    headers: { 'content-type': contentType, 'content-length': fs.statSync(file).size },
  });
  const answered = once(request, 'response') as Promise<[http.IncomingMessage]>;
  const sent = pipeline(fs.createReadStream(file), request);
  // A server that answers early (an error) may close the upload; its answer says more than the broken pipe.
  sent.catch(() => {});
  const [response] = await answered;
  let body = '';
  response.setEncoding('utf8');
  for await (const chunk of response) body += chunk;
  await sent.catch(() => {});
  return { status: response.statusCode ?? 0, body };
}
