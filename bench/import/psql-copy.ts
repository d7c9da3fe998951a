import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import type { ImportMethod } from './method.ts';

/**
 * The limit: `psql \copy` sending, as one COPY FROM STDIN, a file generated with the order id already in every
 * row: the same bytes stratum's server sends after prefixing each line, with no program in between (no
 * `from program 'sed …'`). Timed from starting psql to its exit, so its start and connection count too.
 */
export function psqlCopy(databaseUrl: string, psql: string): ImportMethod {
  const url = new URL(databaseUrl);
  const password = decodeURIComponent(url.password);
  // The password goes in the environment, not on a command line everyone on the machine can read.
  url.password = '';
  const version =
    /\d+(\.\d+)*/.exec(spawnSync(psql, ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[0] ?? 'of unknown version';
  return {
    name: `psql \\copy (client ${version}, the file with the order id in every row)`,
    async run(files) {
      const command = `\\copy orders.order_items (order_id, product_id, quantity, price) from '${files.withOrderId.replaceAll("'", "''")}' with (format csv)`;
      const child = spawn(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url.toString(), '-c', command], {
        env: { ...process.env, PGPASSWORD: password },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d) => {
        output += d;
      });
      child.stderr.on('data', (d) => {
        output += d;
      });
      const [code] = (await once(child, 'close')) as [number | null];
      if (code !== 0) throw new Error(`psql exited with ${code}: ${output.trim()}`);
    },
  };
}
