import { EntitySchema, type Opt } from '@mikro-orm/core';

export const BLOCK_HALVES = ['AM', 'PM'] as const;
export type BlockHalf = (typeof BLOCK_HALVES)[number];

/** One half-day of the schedule. */
export class Block {
  id!: string;
  /** ISO date, YYYY-MM-DD. */
  date!: string;
  half!: BlockHalf;
  version!: Opt<number>;
}

export const BlockSchema = new EntitySchema<Block>({
  class: Block,
  tableName: 'block',
  uniques: [{ properties: ['date', 'half'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    date: { type: 'string', columnType: 'date' },
    half: { type: 'string', columnType: 'text' },
    version: { type: 'integer', version: true },
  },
});
