import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTools } from '../tools/cli.ts';

/** Runs one tool in this process with `env` as its whole environment. */
async function tool(args: string[], env: Record<string, string>) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runTools(args, { out: (l) => out.push(l), err: (l) => err.push(l) }, env, process.cwd());
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

/** `npm run tools -- <args>` as a process: node --import tsx tools/main.ts. */
function toolsProcess(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('tools/main.ts'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// Argument checks of `npm run tools -- chaos` (the runs themselves need the lab and the brokers: docs/reliability.md).
describe('npm run tools -- chaos', () => {
  it.each([
    [['chaos']],
    [['chaos', 'failover', '--fault', 'unplug@10']],
    [['chaos', 'failover', '--fault', 'kill-leader@90', '--duration', '60']],
    [['chaos', 'failover', '--scenario', 'orders-mixed', '--fault', 'kill-leader@10']],
    [['chaos', 'broker', '--broker', 'kafka', '--fault', 'stop@10', '--for', '5']],
    [['chaos', 'broker', '--broker', 'nats', '--fault', 'stop@10']],
  ])('exits 2 with the usage for %j', async (args) => {
    const result = await tool(args, { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/usage: npm run tools -- chaos/);
  });

  it('needs DATABASE_URL to name the cluster for a failover run', async () => {
    const result = await tool(['chaos', 'failover', '--fault', 'kill-leader@10'], { DATABASE_URL: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/DATABASE_URL must name the lab cluster/);
  });

  it('refuses a DATABASE_URL that is not a postgres:// URL, naming it, before anything runs', async () => {
    const result = await tool(['chaos', 'failover', '--fault', 'kill-leader@10'], {
      DATABASE_URL: 'mysql://root@db/app',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "tools: DATABASE_URL must be a postgres:// URL (the lab's is printed by `npm run tools -- lab up`), got a mysql:// URL",
    );
  });
});

describe('the tools entry point (tools/main.ts)', () => {
  it('lists lab, loadtest and chaos in its help', async () => {
    const result = await toolsProcess(['help'], {});
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: npm run tools -- <command>/m);
    for (const command of ['lab up\\|down', 'loadtest <scenario>', 'chaos failover', 'chaos broker'])
      expect(result.stdout).toMatch(new RegExp(`^  ${command}`, 'm'));
  });

  it('runs a tool with its arguments and exit code', async () => {
    const result = await toolsProcess(['chaos', 'broker', '--broker', 'kafka', '--fault', 'stop@10', '--for', '5'], {
      DATABASE_URL: '',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^chaos: --broker must be rabbitmq or nats\nusage: npm run tools -- chaos failover/);
  });

  it("prints each tool's own help", async () => {
    const [lab, loadtest] = await Promise.all([
      toolsProcess(['lab', '--help'], {}),
      toolsProcess(['loadtest', '--help'], {}),
    ]);
    expect(lab.code).toBe(0);
    expect(lab.stdout).toMatch(/^usage: npm run tools -- lab up\|down\|status/);
    expect(loadtest.code).toBe(0);
    expect(loadtest.stdout).toMatch(/^usage: npm run tools -- loadtest </);
  });

  it('rejects an unknown tool with exit code 2', async () => {
    const result = await toolsProcess(['frobnicate'], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^tools: unknown command "frobnicate"; see `npm run tools -- help`/);
  });
});
