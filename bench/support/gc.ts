import v8 from 'node:v8';
import vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/**
 * A full garbage collection, run before each timed operation so the garbage an earlier one left (e.g. the
 * query objects of 100,000 statements) is not collected on the next one's time.
 */
export function collectGarbage(): void {
  gc();
}
