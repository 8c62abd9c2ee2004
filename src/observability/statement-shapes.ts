/** Longest SQL text kept on a span: enough to tell statements apart, not to export them whole. */
const MAX_STATEMENT_CHARS = 300;

/** The statement with its literals masked and its length capped. */
export function statementShape(sql: string): string {
  const masked = sql
    .replace(/'(?:[^']|'')*'/g, "'?'")
    .replace(/\s+/g, ' ')
    .trim();
  return masked.length > MAX_STATEMENT_CHARS ? `${masked.slice(0, MAX_STATEMENT_CHARS)}…` : masked;
}

/** How many statement texts a {@link StatementShapes} remembers. */
export const STATEMENT_SHAPES_KEPT = 256;

/**
 * {@link statementShape}, remembered per statement text: every pg span asks
 * for it, and nearly every text is one of a few prepared statements, so the
 * regular expressions run once per text instead of once per span. Ad-hoc ORM
 * SQL inlines its values and so is a new text almost every time: once
 * `capacity` texts are known, new ones are shaped without being remembered,
 * so the memory stays bounded and the texts that filled it early (the
 * prepared statements of the first calls) stay.
 */
export class StatementShapes {
  private readonly shapes = new Map<string, string>();

  constructor(private readonly capacity = STATEMENT_SHAPES_KEPT) {}

  /** The shape of `sql`, as {@link statementShape} makes it. */
  of(sql: string): string {
    const known = this.shapes.get(sql);
    if (known !== undefined) return known;
    const shape = statementShape(sql);
    if (this.shapes.size < this.capacity) this.shapes.set(sql, shape);
    return shape;
  }

  /** How many texts are remembered. */
  get size(): number {
    return this.shapes.size;
  }
}
