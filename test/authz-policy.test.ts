import { describe, expect, it } from 'vitest';
import { AuthzPolicy, DELEGATE, PolicyError, REFLECTION } from '../src/auth/authz-policy';
import type { Identity } from '../src/auth/identity';
import { loadConfig } from '../src/config';
import { startService } from '../src/main';
import { capturedLog, DEFAULT_POLICY_FILE, TempFiles } from './support/access-control';

/**
 * The policy file on its own: the shipped default loads and grants what the
 * README says, bindings by exact principal, prefix and token role, and a bad
 * file refused with the line of each problem, before the service connects to
 * anything.
 */

const token = (principal: string, ...tokenRoles: string[]): Identity => ({ principal, tokenRoles });

/** The text of the PolicyError that `text` raises (the test fails if it raises none). */
function policyError(text: string): string {
  try {
    AuthzPolicy.parse(text, 'policy.yaml');
  } catch (error) {
    if (error instanceof PolicyError) return error.message;
    throw error;
  }
  throw new Error('the policy was accepted');
}

describe('the default policy', () => {
  const policy = AuthzPolicy.load(DEFAULT_POLICY_FILE);

  it('grants each suggested role its methods, and inherits along viewer → scheduler → coordinator', () => {
    expect(policy.restrictive).toBe(true);
    const granted = (role: string, permission: string) =>
      policy.permits(token('x', role), permission);
    expect(granted('viewer', 'swap.v1.ConflictService/GetResolutionOptions')).toBe(true);
    expect(granted('viewer', 'swap.v1.SwapService/ExecuteSwap')).toBe(false);
    expect(granted('scheduler', 'swap.v1.SwapService/GetSwap')).toBe(true);
    expect(granted('scheduler', 'swap.v1.SwapService/RollbackSwap')).toBe(false);
    expect(granted('coordinator', 'swap.v1.ConflictService/ResolveConflict')).toBe(true);
    expect(granted('coordinator', 'swap.v1.ConflictService/AutoResolve')).toBe(true);
    expect(granted('auditor', 'swap.v1.AuditService/ListAuditEvents')).toBe(true);
    expect(granted('auditor', 'swap.v1.AuditService/VerifyAuditChain')).toBe(true);
    expect(granted('auditor', 'swap.v1.SwapService/GetSwap')).toBe(false);
    expect(granted('coordinator', DELEGATE)).toBe(false);
    expect(granted('delegator', DELEGATE)).toBe(true);
    expect(granted('operator', REFLECTION)).toBe(true);
  });

  it('binds exact principals and /* prefixes, and denies whoever it does not name', () => {
    const ui = token('spiffe://residency.example/ns/swap/sa/scheduling-ui');
    expect(policy.rolesOf(ui)).toEqual(['delegator', 'scheduler']);
    expect(policy.rolesOf(token('spiffe://residency.example/ns/ops/sa/grafana'))).toEqual([
      'operator',
      'viewer',
    ]);
    // A prefix is a path prefix: ns/ops-evil is not under ns/ops/.
    expect(policy.rolesOf(token('spiffe://residency.example/ns/ops-evil/sa/x'))).toEqual([]);
    expect(policy.rolesOf(token('alice', 'unmapped-group'))).toEqual([]);
    expect(policy.permits(token('alice'), 'swap.v1.SwapService/GetSwap')).toBe(false);
  });
});

describe('an open policy (no AUTHZ_POLICY_FILE)', () => {
  it('allows every method and reflection to everyone, and delegation to nobody', () => {
    const open = AuthzPolicy.open();
    expect(open.restrictive).toBe(false);
    expect(open.permits(token('anonymous'), 'swap.v1.SwapService/RollbackSwap')).toBe(true);
    expect(open.permits(token('anonymous'), REFLECTION)).toBe(true);
    expect(open.permits(token('anonymous'), DELEGATE)).toBe(false);
  });
});

describe('a bad policy', () => {
  it.each([
    [
      'an unknown inherited role',
      'roles:\n  viewer:\n    permissions: [swap.v1.SwapService/GetSwap]\n  scheduler:\n    inherits: [viewr]\n',
      'policy.yaml:5:16: roles.scheduler.inherits.0: no role viewr is defined under roles',
    ],
    [
      'a permission that is no method',
      'roles:\n  viewer:\n    permissions:\n      - swap.v1.SwapService/GetSwap\n      - GetSwap\n',
      'policy.yaml:5:9: roles.viewer.permissions.1: a permission is a method',
    ],
    [
      'a misspelt key',
      'roles:\n  viewer:\n    permission: [swap.v1.SwapService/GetSwap]\n',
      'policy.yaml:3:5: roles.viewer.permission: Unrecognized key: "permission"',
    ],
    [
      'a principal bound to an unknown role',
      'roles:\n  viewer: {}\nprincipals:\n  alice: [viewer]\n  bob: [admin]\n',
      'policy.yaml:5:9: principals.bob.0: no role admin is defined under roles',
    ],
    [
      'a wildcard in the middle of a principal',
      'roles:\n  viewer: {}\nprincipals:\n  "spiffe://*/sa/x": [viewer]\n',
      'policy.yaml:4:3: principals.spiffe://*/sa/x: a principal is exact, or a prefix ending in /*',
    ],
    [
      'roles that inherit in a circle',
      'roles:\n  a:\n    inherits: [b]\n  b:\n    inherits: [a]\n',
      'policy.yaml:3:15: roles.a.inherits: roles inherit in a circle: a → b → a',
    ],
    ['broken YAML', 'roles:\n  viewer: [\n', 'policy.yaml:3:1:'],
    [
      'a key given twice',
      'roles:\n  viewer: {}\n  viewer: {}\n',
      'policy.yaml:3:3: Map keys must be unique',
    ],
    ['an empty file', '', 'policy.yaml:1:1: Invalid input: expected object'],
  ])('names the line of %s', (_case, text, expected) => {
    expect(policyError(text)).toContain(expected);
  });

  it('stops the start-up before the service connects to anything', async () => {
    const files = new TempFiles();
    try {
      const file = files.write('bad-policy.yaml', 'roles:\n  viewer:\n    permissions: [Get]\n');
      // Nothing listens on port 1: reaching the database would fail differently.
      const config = loadConfig({
        NODE_ENV: 'test',
        DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none',
        AUTHZ_POLICY_FILE: file,
      });
      await expect(startService(config, { log: capturedLog('silent').log })).rejects.toThrow(
        `${file}:3:19: roles.viewer.permissions.0: a permission is a method`,
      );
    } finally {
      files.remove();
    }
  });
});
