import net from 'node:net';

/** A TCP proxy in front of a real Redis that can hang or drop the connections going through it. */
export interface FaultProxy {
  /** The target's URL with the proxy's host and port. */
  url: string;
  /** Holds every byte in both directions: Redis looks hung (a partition), nothing is lost. */
  freeze(): void;
  /** Delivers what was held and forwards again. */
  thaw(): void;
  /** Drops every connection and refuses new ones: Redis looks down. */
  cut(): void;
  /** Accepts connections again. */
  restore(): void;
  close(): Promise<void>;
}

/**
 * Starts a proxy to the Redis at `targetUrl`, on a free local port.
 * @example const proxy = await startFaultProxy(process.env.REDIS_URL!); proxy.cut(); proxy.restore();
 */
export async function startFaultProxy(targetUrl: string): Promise<FaultProxy> {
  const target = new URL(targetUrl);
  let frozen = false;
  let refusing = false;
  const links = new Set<{ down: net.Socket; up: net.Socket; toUp: Buffer[]; toDown: Buffer[] }>();

  const server = net.createServer((down) => {
    if (refusing) {
      down.destroy();
      return;
    }
    const up = net.connect(Number(target.port || 6379), target.hostname);
    const link = { down, up, toUp: [] as Buffer[], toDown: [] as Buffer[] };
    links.add(link);
    down.on('data', (chunk: Buffer) => {
      if (frozen) link.toUp.push(chunk);
      else up.write(chunk);
    });
    up.on('data', (chunk: Buffer) => {
      if (frozen) link.toDown.push(chunk);
      else down.write(chunk);
    });
    const drop = () => {
      links.delete(link);
      down.destroy();
      up.destroy();
    };
    for (const socket of [down, up]) socket.on('close', drop).on('error', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);

  const cut = () => {
    refusing = true;
    for (const link of [...links]) {
      link.down.destroy();
      link.up.destroy();
      links.delete(link);
    }
  };
  return {
    url: url.toString(),
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
      for (const link of links) {
        for (const chunk of link.toUp.splice(0)) link.up.write(chunk);
        for (const chunk of link.toDown.splice(0)) link.down.write(chunk);
      }
    },
    cut,
    restore: () => {
      refusing = false;
    },
    close: async () => {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
