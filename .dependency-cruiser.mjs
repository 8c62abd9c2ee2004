// @ts-check
// The layering of src/, checked by `npm run lint:layers` (and so by `npm run lint`).
//
// Each layer has one rule that lists what it MAY import; anything else is a violation.
// A new folder therefore belongs to no layer until a rule here says what it may import
// (see `layer-unassigned`), instead of being allowed by default.
//
// Type-only imports count like value imports (`tsPreCompilationDeps: true`): a handler
// that only names an EntityManager type still depends on the database layer.
// Node built-ins (`node:*`) are allowed in every layer; they are not part of the layering.

/** Paths of the layers, as dependency-cruiser sees them (relative, forward slashes). */
const layer = {
  generated: '^src/generated/',
  domain: '^src/domain/',
  schedule: '^src/schedule/',
  observability: '^src/observability/',
  db: '^src/db/',
  coordination: '^src/coordination/',
  writePath: '^src/write-path/',
  swaps: '^src/swaps/',
  conflicts: '^src/conflicts/',
  audit: '^src/audit/',

  auth: '^src/auth/',
  grpc: '^src/grpc/',
  dev: '^src/dev/',
  swapctl: '^src/swapctl/',
  main: '^src/main[.]ts$',
  telemetry: '^src/telemetry[.]ts$',
  config: '^src/config[.]ts$',
  logger: '^src/logger[.]ts$',
};

/** The schedule's read use case (ScheduleService); the rest of src/schedule stays pure. */
const scheduleQueries = '^src/schedule/schedule-queries[.]ts$';

/** Entity files anywhere in src; the entity registry in src/db needs them all. */
const entityFiles = '^src/.+[.]entity[.]ts$';

/** Any npm package (the resolved file lies in a node_modules folder). */
const npmPackages = '(^|/)node_modules/';

/** The ORM and its query builder: no handler may see an EntityManager or a transaction. */
const ormPackages = '(^|/)node_modules/(@mikro-orm/[^/]+|knex)/';

/**
 * One allow-list rule: a module in `from` may import only its own layer, the `allowed`
 * paths and node built-ins.
 * @param {string} name
 * @param {string} from
 * @param {string[]} allowed
 * @param {string} comment
 * @param {string[]} [except] modules of `from` that a rule of their own governs
 * @returns {import('dependency-cruiser').IForbiddenRuleType}
 */
function mayImportOnly(name, from, allowed, comment, except = []) {
  return {
    name,
    comment,
    severity: 'error',
    from: { path: from, pathNot: except },
    to: { pathNot: [from, ...allowed], dependencyTypesNot: ['core'] },
  };
}

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    mayImportOnly(
      'layer-generated',
      layer.generated,
      [npmPackages],
      'src/generated is ts-proto output: it imports only src/generated and its npm runtime; regenerate with `npm run proto` instead of editing.',
    ),
    mayImportOnly(
      'layer-domain',
      layer.domain,
      // The Temporal polyfill stands in for the language's own Temporal (src/domain/clock.ts).
      ['(^|/)node_modules/temporal-polyfill/'],
      'src/domain is pure: it imports only src/domain, node built-ins and the Temporal polyfill, no other npm package (no @mikro-orm) and no other src folder; move the code that needs more out of src/domain.',
    ),
    mayImportOnly(
      'layer-schedule',
      layer.schedule,
      [layer.domain, '(^|/)node_modules/@mikro-orm/core/'],
      'src/schedule (entities and pure schedule policies) imports only src/domain and @mikro-orm/core; database access (src/db, @mikro-orm/postgresql) belongs in src/db or src/write-path (or, for reads, in src/schedule/schedule-queries.ts).',
      [scheduleQueries],
    ),
    {
      name: 'layer-schedule-queries',
      comment:
        'src/schedule/schedule-queries.ts (the ScheduleService read use case) may also run read-only transactions through src/db/transaction-runner.ts; nothing else of src/db.',
      severity: 'error',
      from: { path: scheduleQueries },
      to: {
        pathNot: [layer.schedule, layer.domain, '^src/db/transaction-runner[.]ts$'],
        dependencyTypesNot: ['core'],
      },
    },
    mayImportOnly(
      'layer-swapctl',
      layer.swapctl,
      [layer.generated, '^src/domain/(calendar|ids)[.]ts$', npmPackages],
      'src/swapctl (the CLI) is a gRPC client like any other: it imports only src/generated, the pure calendar and id helpers of src/domain and npm packages; never server internals.',
    ),
    mayImportOnly(
      'layer-observability',
      layer.observability,
      [layer.domain, layer.config, npmPackages],
      'src/observability imports only src/domain, src/config.ts and npm packages; pass anything else in from src/main.ts.',
    ),
    mayImportOnly(
      'layer-db',
      layer.db,
      [layer.domain, layer.observability, entityFiles, npmPackages],
      'src/db imports only src/domain, src/observability and *.entity.ts files; it must not know use cases, coordination or transport, so pass those in from src/main.ts.',
    ),
    mayImportOnly(
      'layer-coordination',
      layer.coordination,
      [layer.domain, layer.db, layer.observability, npmPackages],
      'src/coordination (locks, circuit breaker, idempotency) imports only src/domain, src/db and src/observability; receive config from src/main.ts, and leave schedule knowledge to src/write-path.',
    ),
    mayImportOnly(
      'layer-write-path',
      layer.writePath,
      [
        layer.coordination,
        layer.db,
        layer.schedule,
        layer.domain,
        layer.observability,
        npmPackages,
      ],
      'src/write-path imports only src/coordination, src/db, src/schedule, src/domain and src/observability; use cases call it, it never calls them (take hooks as parameters).',
    ),
    mayImportOnly(
      'layer-swaps',
      layer.swaps,
      [layer.writePath, layer.db, layer.schedule, layer.domain, layer.observability, npmPackages],
      'src/swaps imports only src/write-path, src/db, src/schedule, src/domain and src/observability; never conflicts, coordination or grpc, so pass hooks such as conflict detection in from src/main.ts.',
    ),
    mayImportOnly(
      'layer-conflicts',
      layer.conflicts,
      [
        layer.swaps,
        layer.writePath,
        layer.db,
        layer.schedule,
        layer.domain,
        layer.observability,
        npmPackages,
      ],
      'src/conflicts imports only src/swaps, src/write-path, src/db, src/schedule, src/domain and src/observability; locks go through src/write-path, never src/coordination directly.',
    ),
    mayImportOnly(
      'layer-audit',
      layer.audit,
      [layer.db, layer.domain, layer.observability, layer.writePath, npmPackages],
      'src/audit (the audit trail and its use cases) imports only src/db, src/domain, src/observability and src/write-path (for the hook types); the write path never imports src/audit, so main.ts hands it the hooks.',
    ),
    mayImportOnly(
      'layer-auth',
      layer.auth,
      [layer.domain, npmPackages],
      'src/auth (token and certificate principals, the authorization policy) imports only src/domain and npm packages; it knows no gRPC, so src/grpc adapts calls to it.',
    ),
    {
      name: 'layer-grpc',
      comment:
        'src/grpc only adapts gRPC to use cases: it imports src/swaps, src/conflicts, src/audit, src/auth, src/schedule/schedule-queries.ts, src/domain, src/generated, src/observability, src/config.ts, src/logger.ts and npm packages except @mikro-orm/* and knex; move database, lock and transaction code behind a use case.',
      severity: 'error',
      from: { path: layer.grpc },
      to: {
        pathNot: [
          layer.grpc,
          layer.swaps,
          layer.conflicts,
          layer.audit,

          layer.auth,
          scheduleQueries,
          layer.domain,
          layer.generated,
          layer.observability,
          layer.config,
          layer.logger,
          npmPackages,
        ],
        dependencyTypesNot: ['core'],
      },
    },
    {
      name: 'layer-grpc-no-orm',
      comment:
        'src/grpc never sees an EntityManager or a transaction: no @mikro-orm/* or knex import, not even a type; take what the handler needs from the use case.',
      severity: 'error',
      from: { path: layer.grpc },
      to: { path: ormPackages },
    },
    {
      name: 'layer-dev',
      comment:
        'src/dev (embedded database, demo seed, CLI) may import anything except src/grpc; start the server through src/main.ts.',
      severity: 'error',
      from: { path: layer.dev },
      to: { path: layer.grpc },
    },
    mayImportOnly(
      'layer-telemetry-preload',
      layer.telemetry,
      [layer.config, layer.observability, npmPackages],
      'src/telemetry.ts is preloaded before everything it instruments: it imports only src/config.ts and src/observability.',
    ),
    mayImportOnly(
      'layer-config',
      layer.config,
      [layer.domain, npmPackages],
      'src/config.ts imports no src module except src/domain; every other module receives the config instead.',
    ),
    mayImportOnly(
      'layer-logger',
      layer.logger,
      [layer.domain, npmPackages],
      'src/logger.ts imports no src module except src/domain; every other module receives the logger instead.',
    ),
    {
      name: 'layer-unassigned',
      comment:
        'This module is in no layer of .dependency-cruiser.mjs: put it in an existing src folder or add a layer rule saying what the new folder may import.',
      severity: 'error',
      from: {
        path: '^src/',
        pathNot: Object.values(layer),
      },
      to: {},
    },
    {
      name: 'not-to-main',
      comment:
        'src/main.ts is the composition root: nothing in src imports it; move what you need out of it.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: layer.main },
    },
    {
      name: 'not-to-test-or-bench',
      comment:
        'src never imports test/ or bench/; move the shared code into src (tests may import src, not the other way round).',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'no-circular',
      comment:
        'Circular dependency: make one side independent (move the shared piece down a layer, or pass a hook in from src/main.ts).',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-orphans',
      comment:
        'Nothing imports this module and it is no entry point (main.ts, telemetry.ts, dev/cli.ts, db/migrations): delete it or import it.',
      severity: 'error',
      from: {
        orphan: true,
        path: '^src/',
        pathNot: [
          layer.main,
          layer.telemetry,
          '^src/dev/cli[.]ts$',
          '^src/swapctl/bin[.]cjs$',
          '^src/db/migrations/',
          '[.]d[.]ts$',
        ],
      },
      to: {},
    },
    {
      name: 'not-to-dev-dep',
      comment:
        'src imports a devDependency, which production (npm ci --omit=dev) does not install: move the package to dependencies or the code to test/ or bench/.',
      severity: 'error',
      // The swapctl bin runs the CLI from source through tsx, which `npm ci` installs;
      // it is a developer's and SRE's tool of the checkout, not part of the image.
      from: { path: '^src/', pathNot: ['^src/swapctl/bin[.]cjs$'] },
      to: { dependencyTypes: ['npm-dev'], pathNot: ['(^|/)node_modules/@types/'] },
    },
    {
      name: 'not-to-undeclared-package',
      comment:
        'src imports an npm package that package.json does not declare (e.g. a transitive one): add it to dependencies or import the package that declares it.',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'This import resolves to no file: fix the path, or install the package it names.',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: ['node_modules'] },
    tsConfig: { fileName: 'tsconfig.json' },
    // Type-only imports count: `import type { EntityManager }` in src/grpc is a violation too.
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
  },
};
