/**
 * The ACL `ip` condition: one IPv4/IPv6 address or CIDR, compared the way Go's net.IPNet.Contains
 * does in docker_auth.
 *
 * Go treats an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as the IPv4 address itself, on both
 * sides: such a rule is an IPv4 rule, and such a client (what Node reports for IPv4 clients on a
 * dual-stack socket) is an IPv4 client. A genuine IPv6 rule never matches an IPv4 client, not even
 * `::/0`. Node's BlockList, in contrast, checks IPv4 clients against IPv6 rules through the mapped
 * form, so we first sort rule and client into "v4" or "v6" and only ask the BlockList when they agree.
 */

import { BlockList, SocketAddress, isIP } from 'node:net';

type Kind = 'v4' | 'v6';

export interface IpRule {
  readonly kind: Kind;
  readonly list: BlockList;
}

export interface ClientIp {
  readonly kind: Kind;
  /** Parsed once per request so each rule's BlockList check does not re-parse the string. */
  readonly address: SocketAddress;
}

export class IpPatternError extends Error {
  override readonly name = 'IpPatternError';
}

const MAPPED_PREFIX = new BlockList();
MAPPED_PREFIX.addSubnet('::ffff:0:0', 96, 'ipv6');

function family(version: number): 'ipv4' | 'ipv6' {
  return version === 4 ? 'ipv4' : 'ipv6';
}

/** Go's net.ParseIP rejects zones (`fe80::1%eth0`); Node's isIP accepts them. */
function ipVersion(text: string): 0 | 4 | 6 {
  if (text.includes('%')) return 0;
  return isIP(text) as 0 | 4 | 6;
}

const HINT = 'write a single address such as 10.0.0.1 or 2001:db8::1, or a CIDR such as 10.0.0.0/8 or 2001:db8::/32';

/** Parses the `ip` value of a rule; throws IpPatternError with a fix-it hint. */
export function parseIpRule(text: string): IpRule {
  const list = new BlockList();
  const slash = text.indexOf('/');
  if (slash < 0) {
    const version = ipVersion(text);
    if (version === 0) throw new IpPatternError(`"${text}" is not an IP address; ${HINT}`);
    list.addAddress(text, family(version));
    const mapped = version === 6 && MAPPED_PREFIX.check(text, 'ipv6');
    return { kind: version === 4 || mapped ? 'v4' : 'v6', list };
  }
  const address = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  const version = ipVersion(address);
  if (version === 0) throw new IpPatternError(`"${text}" is not a valid CIDR: "${address}" is not an IP address; ${HINT}`);
  const max = version === 4 ? 32 : 128;
  if (!/^[0-9]+$/.test(bits) || Number(bits) > max) {
    throw new IpPatternError(`"${text}" is not a valid CIDR: the prefix length must be a number from 0 to ${max}; ${HINT}`);
  }
  const prefix = Number(bits);
  list.addSubnet(address, prefix, family(version));
  // Like Go, a mapped network stays IPv4 only if the prefix keeps all of ::ffff:0:0/96.
  const mapped = version === 6 && prefix >= 96 && MAPPED_PREFIX.check(address, 'ipv6');
  return { kind: version === 4 || mapped ? 'v4' : 'v6', list };
}

/** Parses the client address; null when absent or unparsable (then no `ip` rule matches). */
export function parseClientIp(text: string | undefined): ClientIp | null {
  if (text === undefined) return null;
  const version = ipVersion(text);
  if (version === 0) return null;
  const address = new SocketAddress({ address: text, family: family(version) });
  const mapped = version === 6 && MAPPED_PREFIX.check(address);
  return { kind: version === 4 || mapped ? 'v4' : 'v6', address };
}

export function ipRuleMatches(rule: IpRule, client: ClientIp): boolean {
  return rule.kind === client.kind && rule.list.check(client.address);
}
