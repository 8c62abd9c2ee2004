import { expect, it } from 'vitest';
import { rememberedShapes, statementShape } from '../src/observability/telemetry-sdk';

it('masks literals and collapses whitespace, capped in length', () => {
  expect(statementShape(`select  *\n from person where name = 'O''Brien'`)).toBe(
    `select * from person where name = '?'`,
  );
  const long = statementShape(`select ${'x, '.repeat(200)}1`);
  expect(long).toHaveLength(301);
  expect(long).toMatch(/^select x, x, .*…$/);
});

it('shapes remembered texts as statementShape does, past its limit too', () => {
  const shapeOf = rememberedShapes(2);
  const texts = [1, 2, 3, 1, 2, 3].map((n) => `select $1 from t${n} where note = 'secret ${n}'`);
  expect(texts.map(shapeOf)).toEqual(texts.map(statementShape));
  expect(texts.map(shapeOf).some((shape) => shape.includes('secret'))).toBe(false);
});
