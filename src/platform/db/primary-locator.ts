import net from 'node:net';

/** What postgres.js hands a `socket` factory: the parsed hosts and ports of the target, and its TLS mode. */
export interface SocketRequest {
  host: string[];
  port: number[];
  ssl?: unknown;
}

/** What a pool knows about the primary among several hosts. */
export interface PrimaryState {
  /** `host:port` of the host that last answered as a primary, while nothing says it stopped being one. */
  primary: string | undefined;
  /** True once every host in turn failed to give a primary (refused, replica, starting up) since the last one did. */
  unreachable: boolean;
}

export interface PrimaryLocator {
  /** The postgres.js `socket` option: a TCP_NODELAY socket to the known primary, else to the next host in turn. */
  socket(request: SocketRequest): Promise<net.Socket>;
  state(): PrimaryState;
}

/** Between two connection attempts while no host is a primary, so a failover is not met by a handshake storm. */
const PAUSE_WHILE_UNREACHABLE_MS = 200;
/** Startup messages are small; past this the peek gives up (the server is something else). */
const PEEK_LIMIT_BYTES = 64 * 1024;

/**
 * Finds and remembers the primary of a multi-host target for postgres.js, which tries the hosts of a URL in
 * order for every new connection and, while no host is a primary, retries without pause and never fails the
 * waiting queries. The locator watches each new connection's startup messages: `in_hot_standby` (reported by
 * PostgreSQL 14 and later) tells a primary from a replica, so later connections go straight to the primary,
 * and attempts are paced once a whole round of hosts failed. postgres.js still checks target_session_attrs.
 * @example postgres(url, { socket: createPrimaryLocator().socket })
 */
export function createPrimaryLocator(options: { pauseMs?: number } = {}): PrimaryLocator {
  const pauseMs = options.pauseMs ?? PAUSE_WHILE_UNREACHABLE_MS;
  let primary: number | undefined;
  let next = 0;
  let failuresInARow = 0;
  let hostCount = 1;
  let names: string[] = [];

  const failed = (index: number) => {
    failuresInARow++;
    if (primary === index) primary = undefined;
  };
  const confirmed = (index: number) => {
    failuresInARow = 0;
    primary = index;
  };
  const unreachable = () => failuresInARow >= hostCount;

  return {
    async socket(request) {
      hostCount = request.host.length;
      names = request.host.map((h, i) => `${h}:${request.port[i] ?? request.port[0]}`);
      if (unreachable()) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      let index = primary;
      if (index === undefined || index >= hostCount) {
        index = next % hostCount;
        next = index + 1;
      }
      const host = request.host[index]!;
      const port = request.port[index] ?? request.port[0]!;
      const socket = net.connect({ host, port, noDelay: true }) as net.Socket & { host?: string; port?: number };
      // postgres.js names the host in its errors, and takes the TLS server name, from these.
      socket.host = host;
      socket.port = port;
      // Under TLS the startup messages cannot be read here: such targets keep the plain rotation.
      if (!request.ssl) {
        watchStartup(socket, (outcome) => {
          if (outcome === 'primary') confirmed(index);
          else if (outcome === 'not-primary') failed(index);
        });
      }
      return socket;
    },
    state() {
      return { primary: primary === undefined ? undefined : names[primary], unreachable: unreachable() };
    },
  };
}

type Outcome = 'primary' | 'not-primary' | 'unknown';

/**
 * Reads the server's messages up to the first ReadyForQuery: `in_hot_standby` there tells a primary from a
 * replica (`unknown` from a server older than 14). An error or a close before it means not a primary.
 */
function watchStartup(socket: net.Socket, report: (outcome: Outcome) => void): void {
  let buffered: Buffer = Buffer.alloc(0);
  let standby: string | undefined;
  let done = false;
  const finish = (outcome: Outcome) => {
    if (done) return;
    done = true;
    socket.off('data', onData);
    report(outcome);
  };
  const onData = (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 5) {
      const type = buffered[0];
      const length = buffered.readUInt32BE(1);
      if (buffered.length < length + 1) break;
      if (type === 0x53 /* S: ParameterStatus */) {
        const [name, value] = buffered.toString('utf8', 5, length + 1).split('\0');
        if (name === 'in_hot_standby') standby = value;
      } else if (type === 0x5a /* Z: ReadyForQuery */) {
        return finish(standby === 'off' ? 'primary' : standby === 'on' ? 'not-primary' : 'unknown');
      } else if (type === 0x45 /* E: ErrorResponse, e.g. 57P03 the database system is starting up */) {
        return finish('not-primary');
      }
      buffered = buffered.subarray(length + 1);
    }
    if (buffered.length > PEEK_LIMIT_BYTES) finish('not-primary');
  };
  socket.on('data', onData);
  socket.once('close', () => finish('not-primary'));
}
