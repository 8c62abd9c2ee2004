import { describe, expect, it } from 'vitest';
import { StatementShapes, statementShape } from '../src/observability/statement-shapes';

describe('statementShape', () => {
  it('masks string literals and collapses whitespace', () => {
    expect(statementShape(`select *\n  from swap_record where reason = 'it''s Ann'`)).toBe(
      `select * from swap_record where reason = '?'`,
    );
  });

  it('caps the text it keeps', () => {
    const shape = statementShape(`select ${'x, '.repeat(200)}1`);
    expect(shape).toHaveLength(301);
    expect(shape.endsWith('…')).toBe(true);
  });
});

describe('StatementShapes', () => {
  it('gives the same shape as statementShape, once per text or many times', () => {
    const shapes = new StatementShapes();
    const sql = `select id from person where name = 'Ann'  and kind = $1`;
    expect(shapes.of(sql)).toBe(statementShape(sql));
    expect(shapes.of(sql)).toBe(statementShape(sql));
    expect(shapes.size).toBe(1);
  });

  it('stops remembering at its capacity, and still shapes every text', () => {
    const shapes = new StatementShapes(3);
    for (let i = 0; i < 10; i++) {
      const sql = `select * from swap_record where reason = 'reason ${i}' limit ${i}`;
      expect(shapes.of(sql)).toBe(statementShape(sql));
    }
    expect(shapes.size).toBe(3);
  });
});
