import { targetForDatabase } from '../../src/platform/sharding/shard-set.ts';

/**
 * The URL of another database on the same server as `url` (same credentials and options).
 * @example databaseUrl('postgres://u:p@127.0.0.1:5432/a', 'b') // 'postgres://u:p@127.0.0.1:5432/b'
 */
export function databaseUrl(url: string, database: string): string {
  return (targetForDatabase({ url }, database) as { url: string }).url;
}
