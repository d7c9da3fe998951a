import { createHash } from 'node:crypto';
import path from 'node:path';

/** One numbered step of one bounded context's schema, with the SQL that undoes it. */
export interface Migration {
  context: string;
  version: number;
  name: string;
  up: string;
  down: string;
  /** sha256 of the up SQL; an applied migration whose file changed is refused. */
  checksum: string;
  /**
   * Checksums of earlier texts of this up file that did the same to the schema (a rewording, or SQL that moved
   * elsewhere and is applied there since): a database that applied one of them is up to date.
   */
  formerChecksums?: readonly string[];
}

/** The subset of `node:fs` the loader uses, passed in so tests can hand it files from anywhere. */
export interface MigrationFs {
  readdirSync(dir: string): string[];
  readFileSync(file: string, encoding: 'utf8'): string;
}

const FILE = /^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$/;

export function checksumOf(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex');
}

/**
 * Reads `NNNN_name.up.sql` / `NNNN_name.down.sql` pairs from a context's folder, in version order.
 * Every up needs its down, versions must be unique, and nothing else may sit in the folder.
 * @example const migrations = loadMigrations({ fs, dir: 'src/contexts/notes/migrations', context: 'notes' });
 */
export function loadMigrations({
  fs,
  dir,
  context,
  formerChecksums = {},
}: {
  fs: MigrationFs;
  dir: string;
  context: string;
  /** By version: checksums of earlier texts of that up file (see Migration.formerChecksums). */
  formerChecksums?: Readonly<Record<number, readonly string[]>>;
}): Migration[] {
  const pairs = new Map<number, { name: string; up?: string; down?: string }>();
  for (const file of fs.readdirSync(dir).sort()) {
    if (!file.endsWith('.sql')) continue;
    const match = FILE.exec(file);
    if (!match)
      throw new Error(`migrations of ${context}: "${file}" is not named NNNN_name.up.sql or NNNN_name.down.sql`);
    const [, num, name, direction] = match as unknown as [string, string, string, 'up' | 'down'];
    const version = Number(num);
    const entry = pairs.get(version) ?? { name };
    if (entry.name !== name)
      throw new Error(`migrations of ${context}: version ${num} has two names, "${entry.name}" and "${name}"`);
    entry[direction] = fs.readFileSync(path.join(dir, file), 'utf8');
    pairs.set(version, entry);
  }
  return [...pairs.entries()]
    .sort(([a], [b]) => a - b)
    .map(([version, entry]) => {
      if (entry.up === undefined || entry.down === undefined) {
        throw new Error(
          `migrations of ${context}: version ${version} (${entry.name}) needs both an up and a down file`,
        );
      }
      const former = formerChecksums[version];
      return {
        context,
        version,
        name: entry.name,
        up: entry.up,
        down: entry.down,
        checksum: checksumOf(entry.up),
        ...(former ? { formerChecksums: former } : {}),
      };
    });
}
