/**
 * Where the CPU went in a V8 .cpuprofile (from `node --cpu-prof` or the bench's
 * --profile-dir): self time by package, by function, by MikroORM file, and the
 * inclusive time of the busiest functions. Percentages are of busy time, i.e.
 * all samples but (idle).
 *
 *   npx tsx bench/cpuprofile-top.ts /tmp/swap-prof/file.cpuprofile [top=25]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The package (or area of our code) a script belongs to. */
export function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native/builtin)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, 2).join('/')}`;
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const ours = /\/(src|bench|test)\/(.*)$/.exec(url);
  if (ours) return ours[1] === 'src' ? `ours: src/${ours[2]!.split('/')[0]}` : `ours: ${ours[1]}`;
  return url;
}

/** A file's path below its package, e.g. core/unit-of-work/ChangeSetComputer.js. */
function fileOf(url: string): string {
  const modules = url.lastIndexOf('/node_modules/');
  return modules >= 0
    ? url.slice(modules + '/node_modules/'.length)
    : url.replace(/^.*\/(src|bench)\//, '$1/');
}

/**
 * Coarse areas, matched on the script path of the innermost frame that names
 * one. Natives, Node internals and shared helpers (lodash, MikroORM's Utils)
 * have no area of their own, so their time goes to whoever called them.
 */
const AREAS: ReadonlyArray<readonly [string, RegExp]> = [
  [
    'MikroORM hydration + entity creation',
    /@mikro-orm\/core\/(entity\/(EntityFactory|WrappedEntity|Reference)|hydration\/)/,
  ],
  ['MikroORM relation helpers (EntityHelper)', /@mikro-orm\/core\/entity\/EntityHelper/],
  [
    'MikroORM changeset computation',
    /@mikro-orm\/core\/(unit-of-work\/ChangeSetComputer|utils\/(EntityComparator|Comparator))/,
  ],
  ['MikroORM identity map', /@mikro-orm\/core\/unit-of-work\/IdentityMap/],
  ['MikroORM flush orchestration (UoW, persister)', /@mikro-orm\/core\/unit-of-work\//],
  [
    'query building (MikroORM QB/criteria + knex compile)',
    /@mikro-orm\/knex\/query\/|@mikro-orm\/core\/(utils\/QueryHelper|platforms\/)|@mikro-orm\/postgresql\/PostgreSqlPlatform|\/knex\/lib\/(query|formatter|raw|builder|knex-builder|dialects|ref)/,
  ],
  [
    'connection + transaction plumbing (knex runner, tarn)',
    /\/knex\/lib\/(execution|client|transaction)|\/tarn\/|@mikro-orm\/knex\/AbstractSqlConnection|@mikro-orm\/core\/connections\//,
  ],
  [
    'MikroORM EntityManager + driver glue',
    /@mikro-orm\/(core\/EntityManager|knex\/(AbstractSqlDriver|SqlEntityManager)|core\/drivers\/)/,
  ],
  ['pg driver (pg, pg-protocol)', /\/node_modules\/(pg|pg-protocol|pg-types|postgres-array)\//],
  ['gRPC + protobuf', /@grpc\/|@bufbuild\/|node:internal\/http2|\/src\/(generated|grpc)\//],
  ['our domain code (src)', /\/src\//],
  ['bench driver', /\/bench\//],
  ['MikroORM other (metadata, utils)', /@mikro-orm\//],
];
const PASS_THROUGH = /lodash|@mikro-orm\/core\/utils\/(Utils|index)\.js|^node:/;

function areaOf(url: string): string | undefined {
  if (!url || PASS_THROUGH.test(url)) return undefined;
  return AREAS.find(([, re]) => re.test(url))?.[0] ?? 'other libraries';
}

function main(): void {
  const [file, topArg] = process.argv.slice(2);
  if (!file) {
    console.error('usage: tsx bench/cpuprofile-top.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  const top = Number(topArg ?? 25);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // A sample's time is the gap to the next sample; the last gets the mean gap.
  const self = new Map<number, number>();
  const total = profile.timeDeltas.reduce((a, b) => a + b, 0);
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i + 1] ?? total / profile.samples.length;
    self.set(id, (self.get(id) ?? 0) + dt);
  });

  const keyOf = (n: ProfileNode) =>
    `${n.callFrame.functionName || '(anonymous)'}  ${fileOf(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const selfByPackage = new Map<string, number>();
  const selfByFunction = new Map<string, number>();
  const selfByOrmFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const byArea = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const pkg = packageOf(n.callFrame.url, n.callFrame.functionName);
    add(selfByPackage, pkg, us);
    add(selfByFunction, `${keyOf(n)}  [${pkg}]`, us);
    if (pkg.startsWith('@mikro-orm/') || pkg === 'knex')
      add(selfByOrmFile, fileOf(n.callFrame.url), us);
    let area: string | undefined =
      n.callFrame.functionName === '(garbage collector)' ? 'garbage collector' : undefined;
    for (
      let at: number | undefined = id;
      area === undefined && at !== undefined;
      at = parent.get(at)
    ) {
      area = areaOf(byId.get(at)!.callFrame.url);
    }
    add(byArea, area ?? 'node runtime (event loop, sockets)', us);
    // Inclusive: count each function once per stack, however deep it recurses.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!;
      if (!frame.callFrame.url) continue;
      const key = keyOf(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      add(inclusive, key, us);
    }
  }

  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const print = (title: string, map: Map<string, number>, limit: number) => {
    console.log(`\n${title}`);
    for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, limit)) {
      console.log(`  ${pct(us)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
    }
  };
  console.log(
    `${file}\nwall ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s; percentages are of busy time`,
  );
  print('self time by area (natives and helpers charged to their caller)', byArea, top);
  print('self time by package', selfByPackage, top);
  print(`top ${top} functions by self time`, selfByFunction, top);
  print('MikroORM and knex self time by file', selfByOrmFile, top);
  print(`top ${top} functions by inclusive time (synchronous stacks only)`, inclusive, top);
}

function add(map: Map<string, number>, key: string, value: number): void {
  map.set(key, (map.get(key) ?? 0) + value);
}

main();
