import { spawn } from 'node:child_process';
import net from 'node:net';

// What `chaos services` needs before its services start and before its load: free ports and seeded accounts.

type Env = Record<string, string | undefined>;

const BIN = new URL('../../bin/stratum.js', import.meta.url).pathname;

/** A loopback port nothing listens on now (the kernel's pick), for a service to listen on. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * `stratum seed accounts --count N` as its own process, on the database the services use (with the embedded
 * default, the server accounts-data started); resolves with its last line.
 */
export function seedAccounts(count: number, env: Env): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'seed', 'accounts', '--count', String(count)], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(output.trim().split('\n').at(-1) ?? '')
        : reject(
            new Error(`stratum seed accounts exited with ${code}: ${output.trim().split('\n').slice(-3).join(' ')}`),
          ),
    );
  });
}
