/**
 * The lifecycle of a benchmark's server process: what it opened is closed last-first, once, when SIGTERM or
 * SIGINT arrives, when stdin closes (the parent went away), or when start-up fails.
 */
export function serverLifecycle(log: (line: string) => void) {
  const closers: Array<{ name: string; close: () => Promise<void> }> = [];
  let stopping: Promise<void> | undefined;
  function stop(exitCode: number): Promise<void> {
    stopping ??= (async () => {
      for (const { name, close } of closers.reverse()) {
        await close().catch((error: unknown) => {
          log(`closing ${name}: ${(error as Error).message}`);
          exitCode = 1;
        });
      }
      process.exit(exitCode);
    })();
    return stopping;
  }
  process.once('SIGTERM', () => void stop(0));
  process.once('SIGINT', () => void stop(0));
  process.stdin.on('end', () => void stop(0)).resume();
  return {
    /** Registers something to close at the end. */
    onStop(name: string, close: () => Promise<void>) {
      closers.push({ name, close });
    },
    stop,
  };
}
