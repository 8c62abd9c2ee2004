/**
 * Names for the statements of one ExecuteSwap, so the census of two paths can
 * be compared step by step whatever their SQL looks like (MikroORM quotes
 * identifiers and inlines values; the raw path binds $n parameters).
 */
const LABELS: ReadonlyArray<[label: string, pattern: RegExp]> = [
  ['idempotency lookup', /^select fingerprint, response from idempotency_record/i],
  ['begin', /^begin\b/i],
  ['set timeouts', /^select set_config\('lock_timeout'/i],
  ['advisory locks', /pg_advisory_xact_lock/i],
  ['idempotency claim', /^insert into "?idempotency_record"?/i],
  ['lock faculty weeks', /^select fw\.\S+ as "personId".* for update of fw$/i],
  ['schedule facts', /^with wanted as \( select unnest\(/i],
  ['fence faculty weeks', /^with wanted as \( select fw\.id, fw\.person_id/i],
  ['lock assignments', /^select .* from "?assignment"?( as "?a0"?)? where .* for update$/i],
  ['lock calls', /^select .* from "?call_assignment"?( as "?c0"?| c)? .* for update( of c)?$/i],
  ['insert swap_record', /^insert into "?swap_record"?/i],
  ['version check calls (ORM)', /^select "c0"\."id" from "call_assignment"/i],
  ['move calls', /^update "?call_assignment"?/i],
  ['version check assignments (ORM)', /^select "a0"\."id" from "assignment"/i],
  ['move assignments', /^update "?assignment"?/i],
  ['detect conflicts', /^with params as \(/i],
  ['read created alerts', /from "?conflict_alert"?/i],
  ['idempotency complete', /^update "?idempotency_record"? set response/i],
  ['commit', /^commit\b/i],
];

/** The statements MikroORM adds that the raw path folds into its updates' WHERE. */
export const ORM_ONLY_LABELS: ReadonlySet<string> = new Set([
  'version check calls (ORM)',
  'version check assignments (ORM)',
]);

/** The label of one statement (whitespace already collapsed), or `other: <start>`. */
export function labelOf(statement: string): string {
  for (const [label, pattern] of LABELS) if (pattern.test(statement)) return label;
  return `other: ${statement.slice(0, 40)}`;
}

/**
 * How `raw` differs from `service`, step by step, once the statements only the
 * ORM needs are set aside: what each sends that the other does not, and
 * whether the common steps come in the same order.
 */
export function compareCensus(
  service: readonly string[],
  raw: readonly string[],
): { onlyService: string[]; onlyRaw: string[]; sameOrder: boolean } {
  const serviceSteps = service.map(labelOf).filter((l) => !ORM_ONLY_LABELS.has(l));
  const rawSteps = raw.map(labelOf);
  const onlyService = without(serviceSteps, rawSteps);
  const onlyRaw = without(rawSteps, serviceSteps);
  const common = (steps: string[], other: string[]) => steps.filter((s) => other.includes(s));
  const sameOrder =
    common(serviceSteps, rawSteps).join('|') === common(rawSteps, serviceSteps).join('|');
  return { onlyService, onlyRaw, sameOrder };
}

/** `a` minus `b`, as multisets. */
function without(a: readonly string[], b: readonly string[]): string[] {
  const left = [...b];
  return a.filter((x) => {
    const i = left.indexOf(x);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}
