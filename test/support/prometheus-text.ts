/**
 * Just enough of the Prometheus text exposition format (version 0.0.4) to
 * read a scrape in a test: samples with their labels, and the families'
 * declared types. Timestamps, if any, are ignored.
 */

export interface Sample {
  /** The sample's own name, e.g. `swap_lock_wait_seconds_count`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  samples: Sample[];
  /** `# TYPE` declarations, by family name. */
  types: Map<string, string>;
  /** Every sample name in the scrape. */
  names(): Set<string>;
  /** Sum of the samples named `name` whose labels include `labels`; 0 when there are none. */
  sum(name: string, labels?: Record<string, string>): number;
  /** The samples named `name` whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/y;

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`not a sample value: ${text}`);
  return value;
}

function unescape(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseLabels(block: string | undefined, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!block) return labels;
  const body = block.slice(1, -1);
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < body.length) {
    const at = LABEL.lastIndex;
    const match = LABEL.exec(body);
    if (!match) {
      if (body.slice(at).trim() === '') break;
      throw new Error(`malformed labels in: ${line}`);
    }
    labels[match[1]!] = unescape(match[2]!);
  }
  return labels;
}

function includes(labels: Record<string, string>, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([key, value]) => labels[key] === value);
}

/** Parses one scrape; throws on a line it cannot read, so a format change is noticed. */
export function parsePrometheusText(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const type = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (type) types.set(type[1]!, type[2]!);
      continue;
    }
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    samples.push({
      name: match[1]!,
      labels: parseLabels(match[2], line),
      value: parseValue(match[3]!),
    });
  }
  const find = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && includes(s.labels, labels));
  return {
    samples,
    types,
    names: () => new Set(samples.map((s) => s.name)),
    find,
    sum: (name, labels = {}) => find(name, labels).reduce((total, s) => total + s.value, 0),
  };
}

/** Fetches and parses http://127.0.0.1:<port>/metrics. */
export async function scrape(port: number): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
    signal: AbortSignal.timeout(5_000),
  });
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
  return parsePrometheusText(await response.text());
}
