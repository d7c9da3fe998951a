import { describe, expect, it } from 'vitest';
import { runStratum } from './support/child.ts';

// Argument checks of `stratum chaos` (the runs themselves need the lab and the brokers: docs/reliability.md).
describe('stratum chaos', () => {
  it.each([
    [['chaos']],
    [['chaos', 'failover', '--fault', 'unplug@10']],
    [['chaos', 'failover', '--fault', 'kill-leader@90', '--duration', '60']],
    [['chaos', 'failover', '--scenario', 'orders-mixed', '--fault', 'kill-leader@10']],
    [['chaos', 'broker', '--broker', 'kafka', '--fault', 'stop@10', '--for', '5']],
    [['chaos', 'broker', '--broker', 'nats', '--fault', 'stop@10']],
  ])('exits 2 with the usage for %j', async (args) => {
    const result = await runStratum(args, { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/usage: stratum chaos/);
  });

  it('needs DATABASE_URL to name the cluster for a failover run', async () => {
    const result = await runStratum(['chaos', 'failover', '--fault', 'kill-leader@10'], { DATABASE_URL: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/DATABASE_URL must name the lab cluster/);
  });
});
