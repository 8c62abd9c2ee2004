import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { z } from 'zod';
import { DelegationNotAllowedError, MethodNotAllowedError } from '../domain/errors';
import type { Identity } from './identity';

/** Lets a principal name, in `x-on-behalf-of`, the person it acts for. */
export const DELEGATE = 'delegate';
/** Lets a principal use server reflection. */
export const REFLECTION = 'reflection';

/** What one call asks of the policy. */
export interface AccessRequest {
  /** The RPC, e.g. `swap.v1.SwapService/ExecuteSwap`, for the refusal's message. */
  method: string;
  /** The permission it needs: the method's name, or {@link REFLECTION}. */
  permission: string;
  /** Whether the call acts on behalf of someone (and so needs {@link DELEGATE}). */
  delegating: boolean;
}

/** A policy file that cannot be used; the message names the file, line and column of each problem. */
export class PolicyError extends Error {
  override name = 'PolicyError';
}

const METHOD = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.[A-Z][A-Za-z0-9]*\/[A-Z][A-Za-z0-9]*$/;
const roleName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]*$/, 'a role name is lowercase letters, digits, - and _');
const permission = z.string().refine((p) => p === DELEGATE || p === REFLECTION || METHOD.test(p), {
  message: `a permission is a method (package.Service/Method), ${DELEGATE} or ${REFLECTION}`,
});
const principalPattern = z
  .string()
  .min(1)
  .refine((p) => !p.includes('*') || (p.endsWith('/*') && p.indexOf('*') === p.length - 1), {
    message: 'a principal is exact, or a prefix ending in /* (spiffe://domain/ns/team/*)',
  });

const PolicySchema = z
  .strictObject({
    roles: z.record(
      roleName,
      z.strictObject({
        inherits: z.array(roleName).default([]),
        permissions: z.array(permission).default([]),
      }),
    ),
    principals: z.record(principalPattern, z.array(roleName).min(1)).default({}),
    jwtRoles: z.record(z.string().min(1), z.array(roleName).min(1)).default({}),
  })
  .superRefine((policy, ctx) => {
    const unknown = (role: string, path: (string | number)[]) => {
      if (!Object.hasOwn(policy.roles, role))
        ctx.addIssue({ code: 'custom', path, message: `no role ${role} is defined under roles` });
    };
    for (const [name, role] of Object.entries(policy.roles)) {
      role.inherits.forEach((r, i) => unknown(r, ['roles', name, 'inherits', i]));
    }
    for (const [section, bindings] of [
      ['principals', policy.principals],
      ['jwtRoles', policy.jwtRoles],
    ] as const) {
      for (const [key, roles] of Object.entries(bindings)) {
        roles.forEach((r, i) => unknown(r, [section, key, i]));
      }
    }
    const cycle = inheritanceCycle(policy.roles);
    if (cycle) {
      ctx.addIssue({
        code: 'custom',
        path: ['roles', cycle[0]!, 'inherits'],
        message: `roles inherit in a circle: ${cycle.join(' → ')}`,
      });
    }
  });

type PolicyFile = z.infer<typeof PolicySchema>;

/** A policy file, compiled: its bindings, and each role's permissions with those it inherits. */
interface Grants {
  exact: ReadonlyMap<string, readonly string[]>;
  prefixes: readonly (readonly [prefix: string, roles: readonly string[]])[];
  jwtRoles: ReadonlyMap<string, readonly string[]>;
  permissionsOf: ReadonlyMap<string, ReadonlySet<string>>;
}

/**
 * Who may call what. A policy file maps principals (exact, or `…/*` prefixes)
 * and the roles a token claims to service roles, and each role to the
 * permissions it grants; whatever it does not grant is denied. Without a file
 * the policy is open: every caller may call every method and use reflection,
 * and nobody may delegate.
 */
export class AuthzPolicy {
  private constructor(private readonly grants: Grants | undefined) {}

  /** The policy of a service without AUTHZ_POLICY_FILE. */
  static open(): AuthzPolicy {
    return new AuthzPolicy(undefined);
  }

  /** Reads and validates a policy file; a bad one throws a {@link PolicyError} naming the line. */
  static load(file: string): AuthzPolicy {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new PolicyError(`${file}: cannot read the policy file`, { cause: error });
    }
    return AuthzPolicy.parse(text, file);
  }

  /** Validates a policy's text; `source` names it in errors. */
  static parse(text: string, source: string): AuthzPolicy {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines });
    const at = (offset: number) => {
      const { line, col } = lines.linePos(offset);
      return `${source}:${Math.max(line, 1)}:${Math.max(col, 1)}`;
    };
    if (doc.errors.length > 0) {
      const problems = doc.errors.map((e) => `${at(e.pos[0])}: ${e.message.split('\n')[0]}`);
      throw new PolicyError(`Invalid policy:\n  ${problems.join('\n  ')}`);
    }
    const parsed = PolicySchema.safeParse(doc.toJS());
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => {
        const { path, message, atKey } = described(issue);
        const node = nodeAt(doc.contents, path, atKey);
        const where = at(node?.range?.[0] ?? 0);
        return `${where}: ${path.length ? `${path.join('.')}: ` : ''}${message}`;
      });
      throw new PolicyError(`Invalid policy:\n  ${problems.join('\n  ')}`);
    }
    return new AuthzPolicy(compile(parsed.data));
  }

  /** Whether the policy came from a file (and so denies what it does not grant). */
  get restrictive(): boolean {
    return this.grants !== undefined;
  }

  /** The service roles of an identity: those its principal and its token's roles are bound to. */
  rolesOf(identity: Identity): string[] {
    if (!this.grants) return [];
    const roles = new Set(this.grants.exact.get(identity.principal));
    for (const [prefix, bound] of this.grants.prefixes) {
      if (identity.principal.startsWith(prefix)) for (const r of bound) roles.add(r);
    }
    for (const claimed of identity.tokenRoles) {
      for (const r of this.grants.jwtRoles.get(claimed) ?? []) roles.add(r);
    }
    return [...roles].sort();
  }

  /** Whether some role of the identity grants `permission`. */
  permits(identity: Identity, permission: string): boolean {
    const grants = this.grants;
    if (!grants) return permission !== DELEGATE;
    return this.rolesOf(identity).some((r) => grants.permissionsOf.get(r)?.has(permission));
  }

  /** Throws the PermissionDeniedError that refuses the call, if the policy does not allow it. */
  authorize(identity: Identity, request: AccessRequest): void {
    if (!this.permits(identity, request.permission))
      throw new MethodNotAllowedError(identity.principal, request.method);
    if (request.delegating && !this.permits(identity, DELEGATE))
      throw new DelegationNotAllowedError(identity.principal, request.method);
  }
}

function compile(policy: PolicyFile): Grants {
  const permissionsOf = new Map<string, ReadonlySet<string>>();
  const collect = (role: string, into: Set<string>) => {
    const { inherits, permissions } = policy.roles[role]!;
    for (const p of permissions) into.add(p);
    for (const parent of inherits) collect(parent, into);
    return into;
  };
  for (const role of Object.keys(policy.roles)) permissionsOf.set(role, collect(role, new Set()));
  const exact = new Map<string, string[]>();
  const prefixes: [string, string[]][] = [];
  for (const [pattern, roles] of Object.entries(policy.principals)) {
    if (pattern.endsWith('/*')) prefixes.push([pattern.slice(0, -1), roles]);
    else exact.set(pattern, roles);
  }
  return { exact, prefixes, jwtRoles: new Map(Object.entries(policy.jwtRoles)), permissionsOf };
}

/** The first circle in role inheritance, as the roles along it, or undefined. */
function inheritanceCycle(roles: Record<string, { inherits: string[] }>): string[] | undefined {
  const done = new Set<string>();
  const visit = (role: string, trail: string[]): string[] | undefined => {
    if (trail.includes(role)) return [...trail.slice(trail.indexOf(role)), role];
    if (done.has(role) || !Object.hasOwn(roles, role)) return undefined;
    for (const parent of roles[role]!.inherits) {
      const cycle = visit(parent, [...trail, role]);
      if (cycle) return cycle;
    }
    done.add(role);
    return undefined;
  };
  for (const role of Object.keys(roles)) {
    const cycle = visit(role, []);
    if (cycle) return cycle;
  }
  return undefined;
}

/**
 * Where an issue points, and what it says: a misspelt key or a bad record key
 * is pointed at by the key itself, with the message of what is wrong with it.
 */
function described(issue: z.core.$ZodIssue): {
  path: PropertyKey[];
  message: string;
  atKey: boolean;
} {
  if (issue.code === 'unrecognized_keys') {
    return { path: [...issue.path, issue.keys[0]!], message: issue.message, atKey: true };
  }
  if (issue.code === 'invalid_key') {
    return { path: issue.path, message: issue.issues[0]?.message ?? issue.message, atKey: true };
  }
  return { path: issue.path, message: issue.message, atKey: false };
}

/**
 * The YAML node an issue's path leads to (the key of the last step when
 * `atKey`, or when the value is empty), or the deepest one on the way (for a
 * missing key).
 */
function nodeAt(root: unknown, path: readonly PropertyKey[], atKey: boolean): Node | undefined {
  let node: unknown = root;
  let found = isNode(root) ? root : undefined;
  for (const [i, segment] of path.entries()) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isScalar(p.key) && String(p.key.value) === String(segment),
      );
      if (!pair) break;
      const last = i === path.length - 1;
      next = (last && atKey) || !isNode(pair.value) ? pair.key : pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment];
    } else {
      break;
    }
    if (!isNode(next)) break;
    found = next;
    node = next;
  }
  return found;
}

function isNode(value: unknown): value is Node {
  return isMap(value) || isSeq(value) || isScalar(value);
}
