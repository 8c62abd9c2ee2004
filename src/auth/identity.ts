/**
 * Who a credential proved a call comes from, before the policy gives it
 * roles: the principal, and the roles its token claims (a certificate claims
 * none; the policy maps principals and claimed roles to service roles).
 */
export interface Identity {
  readonly principal: string;
  readonly tokenRoles: readonly string[];
}

/** The principal of every call while authentication is off. */
export const ANONYMOUS: Identity = Object.freeze({
  principal: 'anonymous',
  tokenRoles: Object.freeze([]),
});
