/**
 * Named crash points for the crash tests: when a point's name is listed in STRATUM_FAULTS (read by the config),
 * reaching it kills the process at once with SIGKILL, as a power cut would, with nothing cleaned up.
 * Unlisted points cost one Set lookup.
 * @example const fault = faultPoints(config.faults); ... fault('2pc:committed-one');
 */
export type FaultPoint = (name: string) => void;

export function faultPoints(names: readonly string[]): FaultPoint {
  const armed = new Set(names);
  if (armed.size === 0) return () => {};
  return (name) => {
    if (armed.has(name)) {
      process.stderr.write(`stratum: fault point ${name} reached; killing the process\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  };
}
