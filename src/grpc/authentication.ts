import {
  type Metadata,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  ServerInterceptingCall,
  type status,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Authenticator } from '../auth/authenticator';
import { type AuthzPolicy, REFLECTION } from '../auth/authz-policy';
import type { Identity } from '../auth/identity';
import { DomainError, InvalidArgumentError } from '../domain/errors';
import type { CallContexts } from './call-contexts';
import { toGrpcError } from './error-boundary';

/** The header a delegating front-end names the person it acts for in. */
export const ON_BEHALF_OF_HEADER = 'x-on-behalf-of';
const MAX_ON_BEHALF_OF_LENGTH = 200;

/** Load balancers and kubelet probe health without credentials. */
const OPEN_PREFIX = '/grpc.health.v1.Health/';
const REFLECTION_PREFIX = '/grpc.reflection.';

/** A call that the authentication step refused, for the audit trail. */
export interface RefusalEvent {
  /** The authenticated principal; undefined when the call proved nobody. */
  principal: string | undefined;
  /** The person the call claimed to act for (`x-on-behalf-of`), if any. */
  onBehalfOf: string | undefined;
  peer: string;
  /** E.g. `swap.v1.SwapService/ExecuteSwap`. */
  method: string;
  /** The gRPC status sent: UNAUTHENTICATED or PERMISSION_DENIED (INVALID_ARGUMENT, UNAVAILABLE for a bad header or an unreachable key set). */
  status: status;
  /** The ErrorInfo reason sent, e.g. `TOKEN_EXPIRED` or `METHOD_NOT_ALLOWED`. */
  reason: string;
}

export interface AuthenticationOptions {
  authenticator: Authenticator;
  policy: AuthzPolicy;
  contexts: CallContexts;
  log: Logger;
  /** Runs for every refusal; the refusal is sent when it settles (its failure is logged, not sent). */
  onRefused?: (event: RefusalEvent) => void | Promise<void>;
}

/**
 * The interceptor that proves who calls and checks that they may: it
 * authenticates the call (client certificate, else bearer token), admits it
 * to `contexts` with its Caller, and authorizes the method (and any
 * `x-on-behalf-of`) against the policy. A refusal leaves with the status that
 * the error boundary builds, and the handler never runs. Health is open to all.
 * It must run inside `contexts.interceptor`.
 */
export function authentication(options: AuthenticationOptions): ServerInterceptor {
  const { authenticator, policy, contexts, log, onRefused } = options;
  logAccessControl(authenticator, policy, log);
  return (descriptor, call) => {
    const path = descriptor.path;
    if (path.startsWith(OPEN_PREFIX)) return new ServerInterceptingCall(call);
    const method = path.slice(1);
    const permission = path.startsWith(REFLECTION_PREFIX) ? REFLECTION : method;
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            let identity: Identity | undefined;
            let onBehalfOf: string | undefined;
            const admit = async () => {
              identity = await authenticator.authenticate({
                certificate: call.getAuthContext().sslPeerCertificate,
                authorization: stringsOf(metadata, 'authorization'),
              });
              // Nothing after this step needs the token; keep it out of everything downstream.
              metadata.remove('authorization');
              onBehalfOf = onBehalfOfIn(metadata);
              contexts.admit(metadata, {
                principal: identity.principal,
                onBehalfOf,
                peer: call.getPeer(),
              });
              policy.authorize(identity, { method, permission, delegating: !!onBehalfOf });
            };
            admit().then(
              () => nextMetadata(metadata),
              (error: unknown) =>
                refuse(call, error, { principal: identity?.principal, onBehalfOf, method }),
            );
          },
        }),
    });
  };

  function refuse(
    call: ServerInterceptingCallInterface,
    error: unknown,
    about: Pick<RefusalEvent, 'principal' | 'onBehalfOf' | 'method'>,
  ): void {
    const refusal = toGrpcError(error, log.child({ method: about.method }));
    const event: RefusalEvent = {
      ...about,
      peer: call.getPeer(),
      status: refusal.code,
      reason: error instanceof DomainError ? error.reason : '',
    };
    void Promise.resolve()
      .then(() => onRefused?.(event))
      .catch((hookError: unknown) => log.error({ err: hookError, ...event }, 'refusal hook failed'))
      .finally(() => call.sendStatus(refusal));
  }
}

/** The person a delegating front-end acts for, if it says; validated, never trusted yet. */
function onBehalfOfIn(metadata: Metadata): string | undefined {
  const values = stringsOf(metadata, ON_BEHALF_OF_HEADER);
  if (values.length > 1)
    throw new InvalidArgumentError(ON_BEHALF_OF_HEADER, 'must be sent once', 'UNEXPECTED_FIELD');
  const user = values[0]?.trim();
  if (!user) return undefined;
  if (user.length > MAX_ON_BEHALF_OF_LENGTH) {
    throw new InvalidArgumentError(
      ON_BEHALF_OF_HEADER,
      `must be at most ${MAX_ON_BEHALF_OF_LENGTH} characters`,
      'TOO_LONG',
    );
  }
  return user;
}

function stringsOf(metadata: Metadata, key: string): string[] {
  return metadata.get(key).filter((v): v is string => typeof v === 'string');
}

function logAccessControl(authenticator: Authenticator, policy: AuthzPolicy, log: Logger): void {
  const access = policy.restrictive ? 'AUTHZ_POLICY_FILE' : 'every method open';
  if (!authenticator.required) {
    // The embedded default: said once, like plaintext and advisory locks, not warned about.
    log.info({ policy: access }, 'authentication is off: every call is anonymous');
  } else if (!policy.restrictive) {
    log.warn(
      { authentication: authenticator.methods },
      'no AUTHZ_POLICY_FILE: every authenticated caller may call every method',
    );
  } else {
    log.info({ authentication: authenticator.methods, policy: access }, 'access control on');
  }
}
