import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { ImportMethod } from './method.ts';

/**
 * The limit: `psql \copy` reading the file with the order id already in every row (generated that way, so
 * psql does no work stratum's client does not), sending it with COPY FROM STDIN, one statement. Timed from
 * starting psql to its exit, so its start and connection (a few milliseconds) count too.
 */
export function psqlCopy(databaseUrl: string, psql: string): ImportMethod {
  const url = new URL(databaseUrl);
  const password = decodeURIComponent(url.password);
  // The password goes in the environment, not on a command line everyone on the machine can read.
  url.password = '';
  return {
    name: 'psql \\copy (client 15, file with the order id)',
    async run(files) {
      const command = `\\copy orders.order_items (order_id, product_id, quantity, price) from '${files.withOrderId.replaceAll("'", "''")}' with (format csv)`;
      const child = spawn(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url.toString(), '-c', command], {
        env: { ...process.env, PGPASSWORD: password }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d) => { output += d; });
      child.stderr.on('data', (d) => { output += d; });
      const [code] = await once(child, 'close') as [number | null];
      if (code !== 0) throw new Error(`psql exited with ${code}: ${output.trim()}`);
    },
  };
}
