import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261127000000Initial } from './Migration20261127000000Initial';
import { Migration20261127010000Idempotency } from './Migration20261127010000Idempotency';
import { Migration20261127020000Conflicts } from './Migration20261127020000Conflicts';
import { Migration20261201000000AuditTrail } from './Migration20261201000000AuditTrail';
import { Migration20261203000000FencingOwner } from './Migration20261203000000FencingOwner';
import { Migration20261204000000ScaleIndexes } from './Migration20261204000000ScaleIndexes';

/**
 * Every migration, in order. Listed explicitly rather than globbed from disk, so
 * the same list runs from TypeScript sources, compiled output and the image.
 */
export const MIGRATIONS: MigrationObject[] = [
  { name: 'Migration20261127000000Initial', class: Migration20261127000000Initial },
  { name: 'Migration20261127010000Idempotency', class: Migration20261127010000Idempotency },
  { name: 'Migration20261127020000Conflicts', class: Migration20261127020000Conflicts },
  { name: 'Migration20261201000000AuditTrail', class: Migration20261201000000AuditTrail },
  { name: 'Migration20261203000000FencingOwner', class: Migration20261203000000FencingOwner },
  { name: 'Migration20261204000000ScaleIndexes', class: Migration20261204000000ScaleIndexes },
];
