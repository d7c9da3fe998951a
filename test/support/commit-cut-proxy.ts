import net from 'node:net';

/**
 * A TCP proxy in front of a real PostgreSQL that, once armed, breaks the connection of the next transaction
 * sending a matching statement when it sends its COMMIT: either after the server received it (`deliver`: the transaction commits, the client never hears so)
 * or before (`drop`: the server sees the client go and rolls back). The client's outcome is unknown either way.
 */
export async function startCommitCutProxy(targetUrl: string) {
  const target = new URL(targetUrl);
  let armed: { mode: 'deliver' | 'drop'; marker: RegExp } | undefined;
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(down).add(up);
    let silenced = false;
    let marked = false;
    down.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      // The marked statement is the transaction's last: the client's next message on this connection is its
      // COMMIT (as text the first time, as an execution of the prepared statement after).
      if (armed && marked && !armed.marker.test(text)) {
        const mode = armed.mode;
        armed = undefined;
        marked = false;
        cuts++;
        silenced = true;
        if (mode === 'deliver') up.write(chunk);
        // Give the server time to run the COMMIT it got (or to notice nothing came), then break the link.
        setTimeout(() => {
          down.destroy();
          up.destroy();
        }, 200);
        return;
      }
      if (armed?.marker.test(text)) marked = true;
      up.write(chunk);
    });
    up.on('data', (chunk: Buffer) => {
      if (!silenced) down.write(chunk);
    });
    const drop = () => {
      down.destroy();
      up.destroy();
      sockets.delete(down);
      sockets.delete(up);
    };
    for (const socket of [down, up]) socket.on('close', drop).on('error', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    /** Cuts the COMMIT of the next transaction that sends a statement matching `marker`. */
    arm(mode: 'deliver' | 'drop', marker: RegExp) {
      armed = { mode, marker };
    },
    cuts: () => cuts,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
