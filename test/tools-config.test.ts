import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadToolsConfig, ToolsConfigError } from '../src/config/tools-config.ts';

describe('loadToolsConfig', () => {
  it('defaults: the lab in <cwd>/.stratum/lab, no cluster or broker URL, no debug output', () => {
    expect(loadToolsConfig({}, '/work')).toEqual({
      lab: { dir: '/work/.stratum/lab' },
      chaos: { clusterUrl: undefined, brokerUrl: undefined },
      debug: false,
    });
  });

  it('puts the lab under STRATUM_HOME, or in STRATUM_LAB_DIR, relative paths from cwd', () => {
    expect(loadToolsConfig({ STRATUM_HOME: 'home' }, '/work').lab.dir).toBe(path.resolve('/work/home/lab'));
    expect(loadToolsConfig({ STRATUM_HOME: '/srv/s', STRATUM_LAB_DIR: ' ../lab ' }, '/work/main').lab.dir).toBe(
      '/work/lab',
    );
    expect(loadToolsConfig({ STRATUM_LAB_DIR: '/tmp/stratum-ci-lab.x1' }, '/work').lab.dir).toBe(
      '/tmp/stratum-ci-lab.x1',
    );
    expect(loadToolsConfig({ STRATUM_LAB_DIR: '   ' }, '/work').lab.dir).toBe('/work/.stratum/lab');
  });

  it('reads the chaos settings: the cluster URL (multi-host), the broker URL, STRATUM_DEBUG', () => {
    const cluster =
      'postgres://stratum:stratum@127.0.0.1:5441,127.0.0.1:5442,127.0.0.1:5443/stratum?target_session_attrs=primary';
    const settings = loadToolsConfig(
      { DATABASE_URL: ` ${cluster} `, BROKER_URL: 'nats://127.0.0.1:4222', STRATUM_DEBUG: '1' },
      '/work',
    );
    expect(settings.chaos).toEqual({ clusterUrl: cluster, brokerUrl: 'nats://127.0.0.1:4222' });
    expect(settings.debug).toBe(true);
    expect(loadToolsConfig({ STRATUM_DEBUG: '' }, '/work').debug).toBe(false);
    expect(loadToolsConfig({ DATABASE_URL: '', BROKER_URL: '' }, '/work').chaos).toEqual({
      clusterUrl: undefined,
      brokerUrl: undefined,
    });
  });

  it('refuses a DATABASE_URL that is not a postgres:// URL, naming the variable and not the password', () => {
    const read = () => loadToolsConfig({ DATABASE_URL: 'mysql://root:secret@db/app' }, '/work');
    expect(read).toThrow(ToolsConfigError);
    expect(read).toThrow(
      new ToolsConfigError(
        "DATABASE_URL must be a postgres:// URL (the lab's is printed by `npm run tools -- lab up`), got a mysql:// URL",
      ),
    );
    expect(() => loadToolsConfig({ DATABASE_URL: '127.0.0.1:5441' }, '/work')).toThrow(
      /^DATABASE_URL must be a postgres:\/\/ URL .*, got "127\.0\.0\.1:5441"$/,
    );
  });

  it('refuses a BROKER_URL that is not a URL with a host', () => {
    expect(() => loadToolsConfig({ BROKER_URL: '127.0.0.1:5672' }, '/work')).toThrow(
      new ToolsConfigError(
        'BROKER_URL must be a URL with a host, such as amqp://guest:guest@127.0.0.1:5672 or nats://127.0.0.1:4222, got "127.0.0.1:5672"',
      ),
    );
  });

  it('refuses a STRATUM_LAB_DIR with a line break', () => {
    expect(() => loadToolsConfig({ STRATUM_LAB_DIR: '/tmp/lab\n/etc' }, '/work')).toThrow(
      /^STRATUM_LAB_DIR must be a directory path, got "\/tmp\/lab\\n\/etc"$/,
    );
  });
});
