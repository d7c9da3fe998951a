import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** How to stop and start a broker on this machine (Debian packages), overridable per run. */
export interface BrokerControl {
  stop: string;
  start: string;
  host: string;
  port: number;
}

/** The machine's RabbitMQ and NATS, as the Debian packages install and CI starts them. */
export function defaultControl(broker: 'rabbitmq' | 'nats', url: string): BrokerControl {
  const u = new URL(url);
  if (broker === 'rabbitmq') {
    return {
      stop: 'rabbitmqctl stop_app',
      start: 'rabbitmqctl start_app',
      host: u.hostname,
      port: Number(u.port || 5672),
    };
  }
  return {
    stop: 'start-stop-daemon --stop --oknodo --retry 10 --exec /usr/sbin/nats-server',
    start:
      'start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log',
    host: u.hostname,
    port: Number(u.port || 4222),
  };
}

export async function runCommand(command: string): Promise<void> {
  await run('sh', ['-c', command], { timeout: 60_000 });
}

export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host, () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Waits until the port is `open` (or closed), up to `timeoutMs`. */
export async function waitForPort(host: string, port: number, open: boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if ((await portOpen(host, port)) === open) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}
