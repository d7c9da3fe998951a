import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../migrate/migration.ts';

/** Texts that created the outbox here and granted it to named roles; the outbox migration and the contexts' descriptors do that now. */
const FORMER = {
  1: ['9a4c29bd129c2ac0b90ae1ddca23459b288659c48bb7a892d581af95166e304a'],
  2: ['d81c5d7fdb67200b22697b09b9a46fc6bc41f99ac29ab0268dc53c29e41795bd'],
  3: ['24cd131a14f859aa6ee3a67ace90e7c2dd7d3e93c898a96279d89e6e8de04861'],
  4: ['046203180de4e4e832f02ea5f0e268049d9f41caac27c9e194e0ded031bed61c'],
};

/** The messaging tables: processed messages, and the PostgreSQL broker's log and dead letters. */
export function messagingMigrations(): Migration[] {
  return loadMigrations({
    fs,
    dir: fileURLToPath(new URL('.', import.meta.url)),
    formerChecksums: FORMER,
    context: 'messaging',
  });
}
