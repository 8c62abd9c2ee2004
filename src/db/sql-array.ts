/**
 * Encodes values as a PostgreSQL array literal, for `?::uuid[]`-style parameters.
 * MikroORM's raw queries (through knex) spread a JS array parameter into a list
 * of scalars, so arrays travel as one text parameter and are cast in SQL.
 */
export function sqlArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}
