import { isIP } from 'node:net';
import { badRequest } from '../protocol/errors.js';
import { ipRuleMatches, parseClientIp, type IpRule } from '../authz/acl/ip.js';

export interface RealIpSettings {
  header?: string | undefined;
  /** 0 the leftmost entry, negative counts from the end (-1 the last, the one the nearest proxy added). */
  position: number;
  /**
   * The proxies whose header is believed; from any other peer the socket address is used. Unset:
   * the header is always read (docker_auth's behaviour, which existing configs expect).
   */
  trustedProxies?: readonly IpRule[] | undefined;
}

/** Whether the socket peer is one of the trusted proxies. */
function fromTrustedProxy(proxies: readonly IpRule[], socketIp: string | undefined): boolean {
  const peer = parseClientIp(socketIp);
  return peer !== null && proxies.some((rule) => ipRuleMatches(rule, peer));
}

function normalize(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/**
 * The client address: the socket's, or, behind a proxy, one entry of the configured header.
 * Without a configured header a client-supplied one is never read, so it cannot be spoofed; with
 * trusted proxies, it is read only on connections from one of them.
 */
export function clientIp(settings: RealIpSettings, socketIp: string | undefined, headers: Record<string, string | string[] | undefined>): string | undefined {
  if (!settings.header || (settings.trustedProxies && !fromTrustedProxy(settings.trustedProxies, socketIp))) {
    return socketIp ? normalize(socketIp) : undefined;
  }
  const raw = headers[settings.header.toLowerCase()];
  const value = Array.isArray(raw) ? raw.join(',') : raw;
  if (!value) throw badRequest('client address not provided', `missing ${settings.header} header`);
  const entries = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const index = settings.position >= 0 ? settings.position : entries.length + settings.position;
  const entry = entries[Math.max(0, Math.min(index, entries.length - 1))] ?? '';
  const ip = entry.replace(/^\[(.*)\](?::\d+)?$/, '$1');
  if (isIP(ip) === 0) throw badRequest('client address not valid', `bad ${settings.header} entry`);
  return normalize(ip);
}
