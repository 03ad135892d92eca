import { createHash } from 'node:crypto';
import type { Identity, Labels } from '../authn/types.js';
import type { ResourceScope } from '../protocol/scope.js';
import type { AuthzContext } from './types.js';

/**
 * What an external authorizer is told about one scope: docker_auth's `AuthRequestInfo`, with its
 * Go field names (the struct has no json tags), so that an ext_authz program written for
 * docker_auth reads it unchanged. `IP` is `""` when unknown, as Go marshals a nil net.IP; the
 * resource class of `repository(plugin)` is left out, as docker_auth leaves it out.
 */
export interface AuthRequestInfo {
  Account: string;
  Type: string;
  Name: string;
  Service: string;
  IP: string;
  Actions: string[];
  Labels: Labels;
}

export function requestInfo(identity: Identity, scope: ResourceScope, context: AuthzContext): AuthRequestInfo {
  // Label names sorted, as Go's encoding/json writes map keys, which also makes the cache key stable.
  const labels: Record<string, readonly string[]> = {};
  for (const key of Object.keys(identity.labels).sort()) labels[key] = identity.labels[key] ?? [];
  return {
    Account: identity.account,
    Type: scope.type,
    Name: scope.name,
    Service: context.service,
    IP: context.ip ?? '',
    Actions: [...scope.actions],
    Labels: labels,
  };
}

/** A cache key naming everything in the question: the same key means the same question. */
export function requestInfoKey(info: AuthRequestInfo): string {
  return createHash('sha256').update(JSON.stringify(info)).digest('base64url');
}
