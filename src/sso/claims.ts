import type { Labels } from '../store/types.js';
import { PROVIDER_DEFAULTS, type SsoProviderConfig } from './config.js';

/** What a provider says about the person: OIDC claims, or GitHub's user with its orgs and teams. */
export type Claims = Readonly<Record<string, unknown>>;

/** Label keys that sign-in owns on an account: replaced at every sign-in, whatever an admin set. */
export const SSO_LABEL = 'sso';
export const SUBJECT_LABEL = 'sso_subject';

const MAX_LABEL_VALUES = 256;
const MAX_LABEL_VALUE_LENGTH = 255;

export const userClaimOf = (provider: SsoProviderConfig): string => provider.user_claim ?? PROVIDER_DEFAULTS[provider.type].userClaim;
export const labelsClaimsOf = (provider: SsoProviderConfig): readonly string[] =>
  provider.labels_claims ?? PROVIDER_DEFAULTS[provider.type].labelsClaims;
export const displayNameOf = (provider: SsoProviderConfig): string => provider.display_name ?? PROVIDER_DEFAULTS[provider.type].displayName;

/** A claim as a list of strings: a string is a list of one; numbers and booleans are written out. */
export function claimValues(value: unknown): string[] {
  const list = Array.isArray(value) ? (value as unknown[]) : [value];
  return list.flatMap((item) => (typeof item === 'string' ? [item] : typeof item === 'number' || typeof item === 'boolean' ? [String(item)] : []));
}

/**
 * The account name: the user claim, lowercased (registry repository names are lowercase, and the
 * providers treat these names without regard to case), after the provider's account_prefix.
 * Undefined when the provider sent no usable value.
 */
export function accountNameOf(provider: SsoProviderConfig, claims: Claims): string | undefined {
  const value = claims[userClaimOf(provider)];
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  return `${provider.account_prefix ?? ''}${value.trim().toLowerCase()}`;
}

/**
 * The labels sign-in gives the account: each of labels_claims that the provider sent (strings or
 * lists of strings), `sso: [<provider id>]` and `sso_subject: [<the provider's subject>]`.
 */
export function labelsOf(provider: SsoProviderConfig, subject: string, claims: Claims): Labels {
  const labels: Labels = {};
  for (const claim of labelsClaimsOf(provider)) {
    if (claim === SSO_LABEL || claim === SUBJECT_LABEL) continue;
    const values = [...new Set(claimValues(claims[claim]).filter((v) => v !== '' && v.length <= MAX_LABEL_VALUE_LENGTH))];
    if (values.length > 0) labels[claim] = values.slice(0, MAX_LABEL_VALUES);
  }
  labels[SSO_LABEL] = [provider.id];
  labels[SUBJECT_LABEL] = [subject];
  return labels;
}

/** The label keys sign-in replaces on every sign-in; the account's other labels are the admin's. */
export function managedLabelKeys(provider: SsoProviderConfig): string[] {
  return [...new Set([...labelsClaimsOf(provider), SSO_LABEL, SUBJECT_LABEL])];
}

const lower = (values: readonly string[]) => values.map((v) => v.toLowerCase());
const anyOf = (have: readonly string[], wanted: readonly string[]) => wanted.some((w) => have.includes(w));

/** Why the person may not sign in with this provider, or undefined when every restriction holds. */
export interface Refusal {
  /** Shown on the page: says which kind of restriction, never which values would pass. */
  message: string;
  /** For the log. */
  detail: string;
}

export function checkRestrictions(provider: SsoProviderConfig, claims: Claims): Refusal | undefined {
  const r = provider.restrictions;
  if (!r) return undefined;
  if (r.organizations) {
    const orgs = lower(claimValues(claims.organizations));
    if (!anyOf(orgs, lower(r.organizations))) {
      return { message: 'Your account is not a member of an organization allowed to sign in here.', detail: `organizations [${orgs.join(', ')}] not in restrictions.organizations` };
    }
  }
  if (r.teams) {
    const teams = lower(claimValues(claims.teams));
    if (!anyOf(teams, lower(r.teams))) {
      return { message: 'Your account is not a member of a team allowed to sign in here.', detail: `teams [${teams.join(', ')}] not in restrictions.teams` };
    }
  }
  if (r.groups) {
    const groups = claimValues(claims.groups);
    if (!anyOf(groups, r.groups)) {
      return { message: 'Your account is not in a group allowed to sign in here.', detail: `groups [${groups.join(', ')}] not in restrictions.groups` };
    }
  }
  if (r.domains) {
    const domains = lower(r.domains);
    if (provider.type === 'google') {
      // hd is set only for Google Workspace accounts, by Google; an email domain alone proves nothing.
      const hd = typeof claims.hd === 'string' ? claims.hd.toLowerCase() : undefined;
      if (hd === undefined || !domains.includes(hd)) {
        return { message: 'Your Google account does not belong to a domain allowed to sign in here.', detail: `hd ${hd ?? '(none)'} not in restrictions.domains` };
      }
    } else {
      const email = typeof claims.email === 'string' ? claims.email.toLowerCase() : '';
      const domain = email.includes('@') ? email.slice(email.lastIndexOf('@') + 1) : '';
      if (claims.email_verified !== true || !domains.includes(domain)) {
        return {
          message: 'Your account has no verified email address in a domain allowed to sign in here.',
          detail: `email domain ${domain || '(none)'} (verified: ${String(claims.email_verified)}) not in restrictions.domains`,
        };
      }
    }
  }
  for (const [claim, expected] of Object.entries(r.required_claims ?? {})) {
    const actual = claims[claim];
    const ok =
      typeof expected === 'boolean'
        ? actual === expected || (Array.isArray(actual) && actual.includes(expected))
        : anyOf(claimValues(actual), Array.isArray(expected) ? expected : [expected]);
    if (!ok) return { message: 'Your account does not have the attributes required to sign in here.', detail: `claim ${claim} does not match restrictions.required_claims` };
  }
  return undefined;
}
