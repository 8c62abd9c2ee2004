/**
 * Encodes values as a PostgreSQL array literal, for `?::uuid[]`-style parameters.
 * MikroORM's `em.execute` inlines parameters into the SQL text itself (in v7
 * as in v6: its own formatting, not knex's) and spreads a JS array into a list
 * of scalars, so arrays travel as one text literal and are cast in SQL. The
 * kysely that v7 exposes (`em.getKysely()`) would bind them as real arrays, but
 * bypasses MikroORM's error conversion and query log.
 */
export function sqlArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}
