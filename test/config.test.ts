import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/config.ts';

describe('loadConfig: DATABASE_READ_URL', () => {
  const primary = 'postgres://app@db1:5432,db2:5432/app?target_session_attrs=primary';
  const replicas = 'postgres://app@db2:5432,db1:5432/app?target_session_attrs=prefer-standby';

  it('is unset by default: every read goes to the primary', () => {
    expect(loadConfig({ DATABASE_URL: primary }, '/tmp').readDatabaseUrl).toBeUndefined();
  });

  it('is taken with DATABASE_URL', () => {
    expect(loadConfig({ DATABASE_URL: primary, DATABASE_READ_URL: ` ${replicas} ` }, '/tmp').readDatabaseUrl).toBe(replicas);
  });

  it('is refused without DATABASE_URL, naming why', () => {
    expect(() => loadConfig({ DATABASE_READ_URL: replicas }, '/tmp')).toThrow(new ConfigError('DATABASE_READ_URL needs DATABASE_URL (the embedded server has no replicas)'));
  });

  it('is refused when it is not a postgres:// URL', () => {
    expect(() => loadConfig({ DATABASE_URL: primary, DATABASE_READ_URL: 'db2:5432' }, '/tmp')).toThrow(/DATABASE_READ_URL must be a postgres:\/\/ URL/);
  });
});
