import { describe, expect, it } from 'vitest';
import { AclCompileError, compileAcl } from '../../src/authz/acl/index.js';
import type { AclMatch, AclRequest, AclRule } from '../../src/authz/acl/index.js';
import { quoteMeta } from '../../src/authz/acl/placeholders.js';

/** A pull of alice/app by alice from 10.1.2.3; each case overrides what it is about. */
function request(overrides: Partial<AclRequest> = {}): AclRequest {
  return {
    account: 'alice',
    type: 'repository',
    name: 'alice/app',
    service: 'registry.example.com',
    ip: '10.1.2.3',
    labels: {},
    actions: ['pull'],
    ...overrides,
  };
}

/** [name, case] rows, so the full case name (not a truncated object dump) titles each test. */
function named<T extends { name: string }>(cases: T[]): [string, T][] {
  return cases.map((c) => [c.name, c]);
}

interface MatchCase {
  name: string;
  match: AclMatch;
  req: Partial<AclRequest>;
  matches: boolean;
}

/** Single-rule cases: does `match` select the request? (The rule grants ["*"].) */
const matchCases: MatchCase[] = [
  // --- Absent fields, empty match, AND of fields ---
  { name: 'empty match selects any request', match: {}, req: {}, matches: true },
  { name: 'empty match selects the anonymous user', match: {}, req: { account: '' }, matches: true },
  { name: 'literal account equal', match: { account: 'alice' }, req: {}, matches: true },
  { name: 'literal account different', match: { account: 'bob' }, req: {}, matches: false },
  { name: 'literal account is case sensitive', match: { account: 'Alice' }, req: {}, matches: false },
  {
    name: 'all four string fields present and matching',
    match: { account: 'alice', type: 'repository', name: 'alice/app', service: 'registry.example.com' },
    req: {},
    matches: true,
  },
  { name: 'AND: account matches but type does not', match: { account: 'alice', type: 'registry' }, req: {}, matches: false },
  { name: 'AND: name matches but service does not', match: { name: 'alice/app', service: 'other' }, req: {}, matches: false },

  // --- Globs (Go path.Match) ---
  { name: 'glob * matches one path segment', match: { name: '*' }, req: { name: 'app' }, matches: true },
  { name: 'glob * does not cross /', match: { name: '*' }, req: { name: 'alice/app' }, matches: false },
  { name: 'glob * matches the empty string', match: { account: '*' }, req: { account: '' }, matches: true },
  { name: 'glob */* matches two segments', match: { name: '*/*' }, req: { name: 'alice/app' }, matches: true },
  { name: 'glob */* does not match three segments', match: { name: '*/*' }, req: { name: 'a/b/c' }, matches: false },
  { name: 'glob prefix/* matches a direct child', match: { name: 'alice/*' }, req: { name: 'alice/app' }, matches: true },
  { name: 'glob prefix/* does not match a grandchild', match: { name: 'alice/*' }, req: { name: 'alice/team/app' }, matches: false },
  { name: 'glob ** behaves like *', match: { name: 'alice/**' }, req: { name: 'alice/team/app' }, matches: false },
  { name: 'glob is anchored at both ends', match: { name: 'app' }, req: { name: 'myapp' }, matches: false },
  { name: 'glob ? matches one character', match: { name: 'alice/ap?' }, req: {}, matches: true },
  { name: 'glob ? does not match /', match: { name: 'alice?app' }, req: {}, matches: false },
  { name: 'glob ? matches one non-ASCII character', match: { name: 'a?b' }, req: { name: 'a☺b' }, matches: true },
  { name: 'glob . is literal', match: { name: 'alice.app' }, req: { name: 'aliceXapp' }, matches: false },
  { name: 'glob class [abc]', match: { name: 'alice/[abc]pp' }, req: {}, matches: true },
  { name: 'glob range [a-c]', match: { name: 'alice/[a-c]pp' }, req: {}, matches: true },
  { name: 'glob range not containing the character', match: { name: 'alice/[x-z]pp' }, req: {}, matches: false },
  { name: 'glob negated class [^a-c] rejects a', match: { name: 'alice/[^a-c]pp' }, req: {}, matches: false },
  { name: 'glob negated class [^x] accepts a', match: { name: 'alice/[^x]pp' }, req: {}, matches: true },
  { name: 'glob class can match / (unlike ? and *)', match: { name: 'alice[/]app' }, req: {}, matches: true },
  { name: 'glob negated class can match /', match: { name: 'alice[^x]app' }, req: {}, matches: true },
  { name: 'glob non-ASCII range [a-ζ]', match: { name: '[a-ζ]*' }, req: { name: 'αβ' }, matches: true },
  { name: 'glob inverted range [z-a] matches nothing', match: { name: 'x[z-a]' }, req: { name: 'xm' }, matches: false },
  { name: 'glob negated inverted range [^z-a] matches anything', match: { name: 'x[^z-a]' }, req: { name: 'x/' }, matches: true },
  { name: 'glob * inside a class is literal', match: { name: 'a[*]b' }, req: { name: 'a*b' }, matches: true },
  { name: 'glob escaped ] inside a class', match: { name: String.raw`[\]a]` }, req: { name: ']' }, matches: true },
  { name: 'glob escaped - inside a class', match: { name: String.raw`[x\-]` }, req: { name: '-' }, matches: true },
  { name: 'glob \\* is a literal star', match: { name: String.raw`a\*b` }, req: { name: 'a*b' }, matches: true },
  { name: 'glob \\* does not act as a wildcard', match: { name: String.raw`a\*b` }, req: { name: 'axb' }, matches: false },
  { name: 'glob \\? is a literal question mark', match: { name: String.raw`a\?` }, req: { name: 'a?' }, matches: true },
  { name: 'glob several stars with a final literal segment', match: { name: 'a*b*c*d*e*/f' }, req: { name: 'axbxcxdxexxx/f' }, matches: true },
  { name: 'glob several stars cannot skip over /', match: { name: 'a*b*c*d*e*/f' }, req: { name: 'axbxcxdxe/xxx/f' }, matches: false },
  { name: 'glob star then ? chunk found further along', match: { name: 'a*b?c*x' }, req: { name: 'abxbbxdbxebxczzx' }, matches: true },
  { name: 'glob star then ? chunk, wrong last character', match: { name: 'a*b?c*x' }, req: { name: 'abxbbxdbxebxczzy' }, matches: false },
  { name: 'glob last chunk may slide to the end', match: { name: '*x' }, req: { name: 'xxx' }, matches: true },
  // Go commits each star to the leftmost place its next chunk matches; it does not backtrack.
  { name: 'glob Go leftmost commit: *[a/]* does not match a/b', match: { name: '*[a/]*' }, req: { name: 'a/b' }, matches: false },
  { name: 'glob Go leftmost commit: *[a/]* matches xa', match: { name: '*[a/]*' }, req: { name: 'xa' }, matches: true },
  { name: 'glob empty pattern matches only the empty string', match: { service: '' }, req: { service: '' }, matches: true },
  { name: 'glob empty pattern does not match a value', match: { service: '' }, req: {}, matches: false },
  { name: 'glob "//" (two characters) is a literal, not a regex', match: { name: '//' }, req: { name: '//' }, matches: true },
  { name: 'glob "//" does not act as an empty regex', match: { name: '//' }, req: { name: 'alice/app' }, matches: false },

  // --- Regex /.../ (RE2, unanchored) ---
  { name: 'regex is unanchored: /lib/ matches team/mylibrary', match: { name: '/lib/' }, req: { name: 'team/mylibrary' }, matches: true },
  { name: 'regex with ^ anchor', match: { name: '/^lib/' }, req: { name: 'team/mylibrary' }, matches: false },
  { name: 'regex with $ anchor matches the end', match: { name: '/app$/' }, req: {}, matches: true },
  { name: 'regex . crosses /', match: { name: '/^a.*p$/' }, req: { name: 'a/b/app' }, matches: true },
  { name: 'regex alternation', match: { account: '/^(bob|alice)$/' }, req: {}, matches: true },
  { name: 'regex is case sensitive by default', match: { account: '/^ALICE$/' }, req: {}, matches: false },
  { name: 'regex leading (?i) makes it case insensitive', match: { account: '/(?i)^ALICE$/' }, req: {}, matches: true },
  { name: 'regex (?P<name>...) named group is accepted', match: { account: '/^(?P<user>[a-z]+)$/' }, req: {}, matches: true },
  { name: 'regex \\Q...\\E quotes metacharacters', match: { name: String.raw`/^\Qa.b\E$/` }, req: { name: 'axb' }, matches: false },
  { name: 'regex POSIX class [[:digit:]]', match: { name: '/^v[[:digit:]]+$/' }, req: { name: 'v42' }, matches: true },
  { name: 'regex \\A and \\z anchor the text', match: { account: String.raw`/\Aalice\z/` }, req: {}, matches: true },
  { name: 'regex lone { that is not a repeat is literal', match: { name: '/a{,2}/' }, req: { name: 'a{,2}' }, matches: true },
  { name: 'regex {n,m} repeat', match: { name: '/^x{2,3}$/' }, req: { name: 'xxx' }, matches: true },
  { name: 'regex . matches \\r as in RE2', match: { account: '/^a.b$/' }, req: { account: 'a\rb' }, matches: true },
  { name: 'regex . does not match \\n without (?s)', match: { account: '/^a.b$/' }, req: { account: 'a\nb' }, matches: false },
  { name: 'regex (?s) lets . match \\n', match: { account: '/(?s)^a.b$/' }, req: { account: 'a\nb' }, matches: true },
  { name: 'regex \\s does not match vertical tab (RE2)', match: { account: String.raw`/^a\sb$/` }, req: { account: 'a\vb' }, matches: false },
  { name: 'regex $ without (?m) is end of text only', match: { account: '/^a$/' }, req: { account: 'a\nb' }, matches: false },
  { name: 'regex (?m) makes ^ and $ match at line breaks', match: { account: '/(?m)^b$/' }, req: { account: 'a\nb' }, matches: true },
  { name: 'regex \\pL Unicode letter class', match: { account: String.raw`/^\pL+$/` }, req: { account: 'élodie' }, matches: true },

  // --- Placeholders ${account} ${type} ${name} ${service} ---
  { name: '${account} in a name glob', match: { name: '${account}/*' }, req: {}, matches: true },
  { name: '${account} in a name glob, other namespace', match: { name: '${account}/*' }, req: { name: 'bob/app' }, matches: false },
  { name: '${account} in a regex', match: { name: '/^${account}_.*/' }, req: { account: 'foo', name: 'foo_x' }, matches: true },
  { name: 'quoting: account ".*" stays literal in a regex', match: { name: '/${account}_.*/' }, req: { account: '.*', name: 'foo_x' }, matches: false },
  { name: 'quoting: account ".*" still matches itself', match: { name: '/^${account}_/' }, req: { account: '.*', name: '.*_x' }, matches: true },
  { name: 'quoting: account "a*" is not a glob wildcard', match: { name: '${account}' }, req: { account: 'a*', name: 'abc' }, matches: false },
  { name: 'quoting: account "a*" matches the literal name a*', match: { name: '${account}' }, req: { account: 'a*', name: 'a*' }, matches: true },
  { name: 'quoting: account with [ stays literal in a glob', match: { name: '${account}/*' }, req: { account: 'a[b', name: 'a[b/x' }, matches: true },
  { name: 'quoting: account with a backslash', match: { name: '${account}' }, req: { account: String.raw`a\b`, name: String.raw`a\b` }, matches: true },
  { name: 'quoting: account "/x/" does not turn a glob into a regex', match: { name: '${account}' }, req: { account: '/x/', name: 'xyz' }, matches: false },
  { name: '${type} placeholder', match: { name: '${type}/*' }, req: { name: 'repository/app' }, matches: true },
  { name: '${service} placeholder, dots quoted in a regex', match: { name: '/^${service}\\//' }, req: { service: 'reg.io', name: 'regXio/app' }, matches: false },
  { name: '${service} placeholder, exact service prefix', match: { name: '/^${service}\\//' }, req: { service: 'reg.io', name: 'reg.io/app' }, matches: true },
  { name: '${name} placeholder in account', match: { account: '${name}' }, req: { account: 'app', name: 'app' }, matches: true },
  { name: 'two placeholders in one pattern', match: { name: '${account}/${type}' }, req: { name: 'alice/repository' }, matches: true },
  { name: 'placeholder value containing ${name} is not expanded again', match: { name: '${account}' }, req: { account: '${name}', name: '${name}' }, matches: true },

  // --- Unknown placeholders stay literal ---
  { name: 'unknown ${user} is literal text', match: { name: '${user}/*' }, req: {}, matches: false },
  { name: 'unknown ${user} matches itself literally', match: { name: '${user}/*' }, req: { name: '${user}/app' }, matches: true },
  { name: 'placeholder names are case sensitive: ${ACCOUNT}', match: { name: '${ACCOUNT}/*' }, req: {}, matches: false },
  { name: 'unterminated ${account is literal', match: { name: '${account' }, req: { name: '${account' }, matches: true },
  { name: '$ before a placeholder stays literal', match: { name: '$${account}' }, req: { name: '$alice' }, matches: true },

  // --- Capture groups ${field:N} ---
  {
    name: 'capture: email local part as namespace',
    match: { account: String.raw`/^(.+)@test\.com$/`, name: '${account:1}/*' },
    req: { account: 'john.smith@test.com', name: 'john.smith/test' },
    matches: true,
  },
  {
    name: 'capture: out-of-range group stays literal',
    match: { account: String.raw`/^(.+)@test\.com$/`, name: '${account:3}/*' },
    req: { account: 'john.smith@test.com', name: 'john.smith/test' },
    matches: false,
  },
  {
    name: 'capture: group 0 is not supported and stays literal',
    match: { account: String.raw`/^(.+)@test\.com$/`, name: '${account:0}/*' },
    req: { account: 'john.smith@test.com', name: 'john.smith@test.com/x' },
    matches: false,
  },
  {
    name: 'capture: two groups',
    match: { account: String.raw`/^(.+)@(.+?)\.test\.com$/`, name: '${account:1}-${account:2}/*' },
    req: { account: 'john.smith@it.test.com', name: 'john.smith-it/test' },
    matches: true,
  },
  {
    name: 'capture: referenced field is a glob, so the placeholder stays literal',
    match: { account: 'alice', name: '${account:1}/*' },
    req: {},
    matches: false,
  },
  {
    name: 'capture: referenced field absent, placeholder matches itself literally',
    match: { name: '${account:1}/*' },
    req: { name: '${account:1}/app' },
    matches: true,
  },
  {
    name: 'capture: captured text is quoted, "*" is not a wildcard',
    match: { account: '/^(.+)@corp$/', name: '${account:1}/*' },
    req: { account: '*@corp', name: 'victim/app' },
    matches: false,
  },
  {
    name: 'capture: captured "*" matches the literal namespace',
    match: { account: '/^(.+)@corp$/', name: '${account:1}/*' },
    req: { account: '*@corp', name: '*/app' },
    matches: true,
  },
  {
    name: 'capture: from name used in service',
    match: { name: '/^([^/]+)//', service: '${name:1}.registry' },
    req: { name: 'team/app', service: 'team.registry' },
    matches: true,
  },
  {
    name: 'capture: group that did not take part is empty',
    match: { account: '/^(x)?(.+)$/', name: '${account:1}${account:2}/*' },
    req: {},
    matches: true,
  },
  {
    name: 'capture: (?U) makes the group lazy',
    match: { account: '/^(?U)(a+)/', name: '${account:1}' },
    req: { account: 'aaa', name: 'a' },
    matches: true,
  },
  {
    name: 'capture: inside a regex pattern',
    match: { account: '/^([a-z]+)-bot$/', name: '/^${account:1}\\/ci-/' },
    req: { account: 'alice-bot', name: 'alice/ci-cache' },
    matches: true,
  },

  // --- Service and type ---
  { name: 'service literal match', match: { service: 'registry.example.com' }, req: {}, matches: true },
  { name: 'service literal mismatch', match: { service: 'notary' }, req: {}, matches: false },
  { name: 'service glob', match: { service: '*.example.com' }, req: {}, matches: true },
  { name: 'type repository', match: { type: 'repository' }, req: {}, matches: true },
  { name: 'type registry does not match a repository scope', match: { type: 'registry' }, req: {}, matches: false },
  { name: 'type glob repo*', match: { type: 'repo*' }, req: {}, matches: true },

  // --- IP: IPv4, IPv6, CIDR, IPv4-mapped ---
  { name: 'ip absent matches a request without an IP', match: {}, req: { ip: undefined }, matches: true },
  { name: 'ip v4 exact', match: { ip: '10.1.2.3' }, req: {}, matches: true },
  { name: 'ip v4 exact, other address', match: { ip: '10.1.2.4' }, req: {}, matches: false },
  { name: 'ip v4 CIDR contains', match: { ip: '10.0.0.0/8' }, req: {}, matches: true },
  { name: 'ip v4 CIDR does not contain', match: { ip: '192.168.0.0/16' }, req: {}, matches: false },
  { name: 'ip v4 CIDR with host bits set', match: { ip: '10.9.9.9/8' }, req: {}, matches: true },
  { name: 'ip v4 /0 matches every IPv4 client', match: { ip: '0.0.0.0/0' }, req: {}, matches: true },
  { name: 'ip rule, request without IP', match: { ip: '10.1.2.3' }, req: { ip: undefined }, matches: false },
  { name: 'ip rule, unparsable request IP', match: { ip: '10.0.0.0/8' }, req: { ip: 'not-an-ip' }, matches: false },
  { name: 'ip rule, request IP with a zone is unparsable (as in Go)', match: { ip: 'fe80::/10' }, req: { ip: 'fe80::1%eth0' }, matches: false },
  { name: 'ip v6 exact', match: { ip: '2001:db8::1' }, req: { ip: '2001:db8::1' }, matches: true },
  { name: 'ip v6 exact, other address', match: { ip: '2001:db8::1' }, req: { ip: '2001:db8::2' }, matches: false },
  { name: 'ip v6 exact, different spelling', match: { ip: '2001:DB8::1' }, req: { ip: '2001:db8:0:0:0:0:0:1' }, matches: true },
  { name: 'ip v6 CIDR contains', match: { ip: '2001:db8::/48' }, req: { ip: '2001:db8:0:ff::1' }, matches: true },
  { name: 'ip v6 CIDR does not contain', match: { ip: '2001:db8::/48' }, req: { ip: '2001:db9::1' }, matches: false },
  { name: 'ip mapped client ::ffff:10.1.2.3 matches an IPv4 CIDR', match: { ip: '10.0.0.0/8' }, req: { ip: '::ffff:10.1.2.3' }, matches: true },
  { name: 'ip mapped client ::ffff:10.1.2.3 matches an IPv4 address', match: { ip: '10.1.2.3' }, req: { ip: '::ffff:10.1.2.3' }, matches: true },
  { name: 'ip mapped client in hex form', match: { ip: '10.0.0.0/8' }, req: { ip: '::ffff:a01:203' }, matches: true },
  { name: 'ip mapped rule matches a plain IPv4 client', match: { ip: '::ffff:10.1.2.3' }, req: {}, matches: true },
  { name: 'ip mapped CIDR rule is an IPv4 rule', match: { ip: '::ffff:10.0.0.0/104' }, req: {}, matches: true },
  { name: 'ip v6 ::/0 does not match IPv4 clients (as in Go)', match: { ip: '::/0' }, req: {}, matches: false },
  { name: 'ip v6 ::/0 does not match mapped clients', match: { ip: '::/0' }, req: { ip: '::ffff:10.1.2.3' }, matches: false },
  { name: 'ip v4 /0 does not match IPv6 clients', match: { ip: '0.0.0.0/0' }, req: { ip: '::1' }, matches: false },
  { name: 'ip AND with account', match: { ip: '10.0.0.0/8', account: 'bob' }, req: {}, matches: false },

  // --- labels: {k: pattern} (ANY value per key, AND across keys) ---
  { name: 'labels: user has no labels', match: { labels: { group: 'admins' } }, req: {}, matches: false },
  { name: 'labels: label missing', match: { labels: { foo: 'bar' } }, req: { labels: { group: ['admins'] } }, matches: false },
  { name: 'labels: first value matches', match: { labels: { group: 'admins' } }, req: { labels: { group: ['admins', 'VIP'] } }, matches: true },
  { name: 'labels: a later value matches', match: { labels: { group: 'VIP' } }, req: { labels: { group: ['admins', 'VIP'] } }, matches: true },
  { name: 'labels: no value matches', match: { labels: { group: 'devs' } }, req: { labels: { group: ['admins', 'VIP'] } }, matches: false },
  { name: 'labels: empty value list', match: { labels: { group: '*' } }, req: { labels: { group: [] } }, matches: false },
  {
    name: 'labels: AND, one key missing',
    match: { labels: { foo: 'bar', group: 'admins' } },
    req: { labels: { group: ['admins', 'VIP'] } },
    matches: false,
  },
  {
    name: 'labels: AND, both keys match',
    match: { labels: { team: 'core', group: 'admins' } },
    req: { labels: { group: ['admins'], team: ['web', 'core'] } },
    matches: true,
  },
  { name: 'labels: glob pattern', match: { labels: { group: 'a*' } }, req: { labels: { group: ['VIP', 'admins'] } }, matches: true },
  { name: 'labels: regex pattern', match: { labels: { group: '/(admins|VIP)/' } }, req: { labels: { group: ['VIP'] } }, matches: true },
  { name: 'labels: key "constructor" is not found on the prototype', match: { labels: { constructor: '*' } }, req: { labels: {} }, matches: false },
  { name: 'labels: ${account} in a label pattern', match: { labels: { owner: '${account}' } }, req: { labels: { owner: ['alice'] } }, matches: true },
  { name: 'labels: ${account} in a label pattern, other user', match: { labels: { owner: '${account}' } }, req: { account: 'bob', labels: { owner: ['alice'] } }, matches: false },
  {
    name: 'labels: ${labels:k} is not expanded in a label pattern',
    match: { labels: { team: '${labels:team}' } },
    req: { labels: { team: ['core'] } },
    matches: false,
  },

  // --- ${labels:k} placeholders ---
  { name: '${labels:k}: user without labels', match: { name: '${labels:group}/*' }, req: {}, matches: false },
  { name: '${labels:k}: label not present', match: { name: '${labels:noexist}/*' }, req: { labels: { group: ['admins'] } }, matches: false },
  { name: '${labels:k}: one value matches', match: { name: '${labels:group}/*' }, req: { name: 'admins/foo', labels: { group: ['admins', 'VIP'] } }, matches: true },
  { name: '${labels:k}: second value matches', match: { name: '${labels:group}/*' }, req: { name: 'VIP/foo', labels: { group: ['admins', 'VIP'] } }, matches: true },
  { name: '${labels:k}: no value matches', match: { name: '${labels:group}/*' }, req: { name: 'devs/foo', labels: { group: ['admins', 'VIP'] } }, matches: false },
  { name: '${labels:k}: empty value list', match: { name: '${labels:group}/*' }, req: { name: 'x/y', labels: { group: [] } }, matches: false },
  {
    name: '${labels:k} x2: a combination matches',
    match: { name: '${labels:group}/${labels:project}' },
    req: { name: 'VIP/api', labels: { group: ['admins', 'VIP'], project: ['api', 'frontend'] } },
    matches: true,
  },
  {
    name: '${labels:k} x2: right labels, no combination matches',
    match: { name: '${labels:group}/${labels:project}' },
    req: { name: 'devs/api', labels: { group: ['admins', 'VIP'], project: ['api', 'frontend'] } },
    matches: false,
  },
  {
    name: '${labels:k} x2: second label missing',
    match: { name: '${labels:group}/${labels:noexist}' },
    req: { name: 'VIP/api', labels: { group: ['admins', 'VIP'], project: ['api'] } },
    matches: false,
  },
  {
    name: '${labels:k} same key twice takes the same value',
    match: { name: '${labels:g}/${labels:g}' },
    req: { name: 'a/b', labels: { g: ['a', 'b'] } },
    matches: false,
  },
  {
    name: '${labels:k} values are raw: "a*" acts as a glob (compatibility)',
    match: { name: '${labels:group}/x' },
    req: { name: 'abc/x', labels: { group: ['a*'] } },
    matches: true,
  },
  {
    name: '${labels:k} a malformed value is skipped, a later one matches',
    match: { name: '${labels:group}/x' },
    req: { name: 'ok/x', labels: { group: ['[', 'ok'] } },
    matches: true,
  },
  {
    name: '${labels:k} inside a regex',
    match: { name: '/^${labels:team}\\//' },
    req: { name: 'core/app', labels: { team: ['web', 'core'] } },
    matches: true,
  },
  {
    name: '${labels:k} together with ${account}',
    match: { name: '${labels:env}/${account}' },
    req: { name: 'prod/alice', labels: { env: ['dev', 'prod'] } },
    matches: true,
  },
  {
    name: '${labels:k} in account',
    match: { account: '${labels:alias}' },
    req: { labels: { alias: ['al', 'alice'] } },
    matches: true,
  },

  // --- Anonymous account "" ---
  { name: 'anonymous: no account condition matches ""', match: { name: 'alice/app' }, req: { account: '' }, matches: true },
  { name: 'anonymous: /.+/ excludes ""', match: { account: '/.+/' }, req: { account: '' }, matches: false },
  { name: 'anonymous: /.+/ includes a named user', match: { account: '/.+/' }, req: {}, matches: true },
  { name: 'anonymous: account "" selects only anonymous', match: { account: '' }, req: { account: '' }, matches: true },
];

describe('ACL matching', () => {
  it.each(named(matchCases))('%s', (_name, { match, req, matches }) => {
    const acl = compileAcl([{ match, actions: ['*'] }]);
    expect(acl.evaluate(request(req)) !== null).toBe(matches);
  });
});

interface DecisionCase {
  name: string;
  rules: AclRule[];
  req: Partial<AclRequest>;
  /** The deciding rule and granted actions, or null for NoMatch. */
  want: { index: number; actions: string[] } | null;
}

const decisionCases: DecisionCase[] = [
  // --- First match wins ---
  { name: 'no rules: NoMatch', rules: [], req: {}, want: null },
  { name: 'no rule matches: NoMatch', rules: [{ match: { account: 'bob' }, actions: ['*'] }], req: {}, want: null },
  {
    name: 'first matching rule decides',
    rules: [
      { match: { account: 'bob' }, actions: ['*'] },
      { match: { account: 'alice' }, actions: ['pull'] },
      { match: {}, actions: ['*'] },
    ],
    req: { actions: ['pull', 'push'] },
    want: { index: 1, actions: ['pull'] },
  },
  {
    name: 'empty actions is an explicit deny that stops the search',
    rules: [
      { match: { account: 'alice' }, actions: [] },
      { match: {}, actions: ['*'] },
    ],
    req: {},
    want: { index: 0, actions: [] },
  },
  {
    name: 'an empty intersection still decides',
    rules: [
      { match: {}, actions: ['delete'] },
      { match: {}, actions: ['*'] },
    ],
    req: { actions: ['pull'] },
    want: { index: 0, actions: [] },
  },

  // --- ["*"] echoes the request ---
  { name: '["*"] grants requested actions in request order', rules: [{ match: {}, actions: ['*'] }], req: { actions: ['push', 'pull'] }, want: { index: 0, actions: ['push', 'pull'] } },
  { name: '["*"] removes duplicates', rules: [{ match: {}, actions: ['*'] }], req: { actions: ['pull', 'push', 'pull'] }, want: { index: 0, actions: ['pull', 'push'] } },
  { name: '["*"] echoes "*" itself', rules: [{ match: {}, actions: ['*'] }], req: { actions: ['*'] }, want: { index: 0, actions: ['*'] } },
  { name: '["*"] echoes an empty action name', rules: [{ match: {}, actions: ['*'] }], req: { actions: [''] }, want: { index: 0, actions: [''] } },
  { name: '["*"] with no requested actions', rules: [{ match: {}, actions: ['*'] }], req: { actions: [] }, want: { index: 0, actions: [] } },

  // --- Any other list is intersected and sorted ---
  { name: 'intersection is sorted', rules: [{ match: {}, actions: ['push', 'pull'] }], req: { actions: ['push', 'pull'] }, want: { index: 0, actions: ['pull', 'push'] } },
  { name: 'intersection keeps only allowed actions', rules: [{ match: {}, actions: ['pull'] }], req: { actions: ['push', 'pull', 'delete'] }, want: { index: 0, actions: ['pull'] } },
  { name: 'intersection removes duplicates', rules: [{ match: {}, actions: ['pull', 'pull'] }], req: { actions: ['pull', 'pull'] }, want: { index: 0, actions: ['pull'] } },
  { name: 'intersection sorts by code point', rules: [{ match: {}, actions: ['b', 'B', 'a'] }], req: { actions: ['a', 'b', 'B'] }, want: { index: 0, actions: ['B', 'a', 'b'] } },
  {
    name: 'intersection sorts by code point like Go, not by UTF-16 unit',
    rules: [{ match: {}, actions: ['\u{1F600}', '\uFF5E'] }],
    req: { actions: ['\u{1F600}', '\uFF5E'] },
    want: { index: 0, actions: ['\uFF5E', '\u{1F600}'] },
  },
  { name: '"*" in a longer list is not special', rules: [{ match: {}, actions: ['pull', '*'] }], req: { actions: ['push'] }, want: { index: 0, actions: [] } },
  { name: '"*" in a longer list matches a literal "*" request', rules: [{ match: {}, actions: ['pull', '*'] }], req: { actions: ['*', 'push'] }, want: { index: 0, actions: ['*'] } },

  // --- Catalog (registry:catalog:*) needs ["*"] ---
  {
    name: 'catalog: ["pull"] grants nothing',
    rules: [{ match: { type: 'registry', name: 'catalog' }, actions: ['pull'] }],
    req: { type: 'registry', name: 'catalog', actions: ['*'] },
    want: { index: 0, actions: [] },
  },
  {
    name: 'catalog: ["*"] grants "*"',
    rules: [{ match: { type: 'registry', name: 'catalog' }, actions: ['*'] }],
    req: { type: 'registry', name: 'catalog', actions: ['*'] },
    want: { index: 0, actions: ['*'] },
  },

  // --- A typical configuration ---
  ...((): DecisionCase[] => {
    const rules: AclRule[] = [
      { match: { account: 'admin' }, actions: ['*'], comment: 'admin can do anything' },
      { match: { account: '' }, actions: ['pull'], comment: 'anonymous may pull' },
      { match: { account: '/.+/', name: '${account}/*' }, actions: ['*'], comment: 'own namespace' },
      { match: { account: '/.+/' }, actions: ['pull'], comment: 'logged-in users may pull' },
    ];
    return [
      { name: 'typical: admin pushes anywhere', rules, req: { account: 'admin', name: 'x/y', actions: ['pull', 'push'] }, want: { index: 0, actions: ['pull', 'push'] } },
      { name: 'typical: anonymous pull', rules, req: { account: '', actions: ['pull', 'push'] }, want: { index: 1, actions: ['pull'] } },
      { name: 'typical: user pushes to own namespace', rules, req: { actions: ['push'] }, want: { index: 2, actions: ['push'] } },
      { name: 'typical: user may only pull elsewhere', rules, req: { name: 'bob/app', actions: ['pull', 'push'] }, want: { index: 3, actions: ['pull'] } },
      { name: 'typical: catalog for a user is denied', rules, req: { type: 'registry', name: 'catalog', actions: ['*'] }, want: { index: 3, actions: [] } },
    ];
  })(),
];

describe('ACL decisions', () => {
  it.each(named(decisionCases))('%s', (_name, { rules, req, want }) => {
    const decision = compileAcl(rules).evaluate(request(req));
    if (want === null) {
      expect(decision).toBeNull();
      return;
    }
    expect(decision).not.toBeNull();
    expect({ index: decision?.index, actions: decision?.actions }).toEqual(want);
    expect(decision?.rule).toBe(rules[want.index]);
  });

  it('keeps the rules it was compiled from', () => {
    const rules: AclRule[] = [{ match: {}, actions: ['*'] }];
    expect(compileAcl(rules).rules).toEqual(rules);
  });

  it('gives the same answer for repeated requests (expansion cache)', () => {
    const acl = compileAcl([{ match: { name: '${account}/*' }, actions: ['*'] }]);
    for (let i = 0; i < 1000; i++) {
      const account = `user${i % 700}`;
      expect(acl.evaluate(request({ account, name: `${account}/app` }))?.index).toBe(0);
      expect(acl.evaluate(request({ account, name: `other${i}/app` }))).toBeNull();
    }
  });
});

describe('${labels:k} combinations are bounded', () => {
  const values = Array.from({ length: 20 }, (_, i) => `v${i}`);
  const rules: AclRule[] = [{ match: { name: '${labels:a}/${labels:b}/${labels:c}' }, actions: ['*'] }];

  it('a combination found early matches', () => {
    const req = request({ name: 'v0/v0/v5', labels: { a: values, b: values, c: values } });
    expect(compileAcl(rules).evaluate(req)).not.toBeNull();
  });

  it('a product beyond the bound (20^3 = 8000) fails closed instead of running on', () => {
    const req = request({ name: 'v19/v19/v19', labels: { a: values, b: values, c: values } });
    expect(compileAcl(rules).evaluate(req)).toBeNull();
  });
});

interface CompileErrorCase {
  name: string;
  rules: unknown[];
  path: (string | number)[];
  message: string;
}

const compileErrorCases: CompileErrorCase[] = [
  // --- Bad regex ---
  { name: 'regex with an unclosed group', rules: [{ match: { name: '/(/' }, actions: [] }], path: [0, 'match', 'name'], message: 'invalid regular expression' },
  { name: 'regex with a nested repeat', rules: [{ match: { account: '/foo?*/' }, actions: [] }], path: [0, 'match', 'account'], message: 'Nothing to repeat' },
  { name: 'regex look-ahead (not RE2)', rules: [{ match: { name: '/(?=a)/' }, actions: [] }], path: [0, 'match', 'name'], message: 'not supported by RE2' },
  { name: 'regex back-reference (not RE2)', rules: [{ match: { name: String.raw`/(a)\1/` }, actions: [] }], path: [0, 'match', 'name'], message: 'back-references' },
  { name: 'regex repeat count above 1000', rules: [{ match: { name: '/a{1001}/' }, actions: [] }], path: [0, 'match', 'name'], message: 'invalid repeat count' },
  { name: 'regex unknown escape', rules: [{ match: { name: String.raw`/\q/` }, actions: [] }], path: [0, 'match', 'name'], message: 'invalid escape sequence' },
  { name: 'regex (?i) not at the start', rules: [{ match: { name: '/a(?i)b/' }, actions: [] }], path: [0, 'match', 'name'], message: 'very start of the pattern' },
  { name: 'regex in service of the third rule', rules: [{ match: {}, actions: [] }, { match: {}, actions: [] }, { match: { service: '/[/' }, actions: [] }], path: [2, 'match', 'service'], message: 'missing closing ]' },
  { name: 'regex with a placeholder is still validated', rules: [{ match: { name: '/${account}(/' }, actions: [] }], path: [0, 'match', 'name'], message: 'invalid regular expression' },

  // --- Bad glob ---
  { name: 'glob with an unterminated class', rules: [{ match: { account: 'team-[' }, actions: [] }], path: [0, 'match', 'account'], message: 'unterminated character class' },
  { name: 'glob ending in a backslash', rules: [{ match: { name: 'a\\' }, actions: [] }], path: [0, 'match', 'name'], message: 'lone backslash' },
  { name: 'glob with an empty class', rules: [{ match: { type: '[]a]' }, actions: [] }], path: [0, 'match', 'type'], message: 'empty or starts with ]' },
  { name: 'glob with a bare - in a class', rules: [{ match: { name: '[-x]' }, actions: [] }], path: [0, 'match', 'name'], message: 'misplaced -' },
  { name: 'glob with an open range', rules: [{ match: { name: '[x-]' }, actions: [] }], path: [0, 'match', 'name'], message: 'no upper bound' },

  // --- Bad ip / CIDR ---
  { name: 'ip with a wildcard', rules: [{ match: { ip: '192.168.0.*' }, actions: [] }], path: [0, 'match', 'ip'], message: 'not an IP address' },
  { name: 'ip that is a word', rules: [{ match: { ip: 'localhost' }, actions: [] }], path: [0, 'match', 'ip'], message: 'not an IP address' },
  { name: 'ip with a zone', rules: [{ match: { ip: 'fe80::1%eth0' }, actions: [] }], path: [0, 'match', 'ip'], message: 'not an IP address' },
  { name: 'cidr v4 prefix too long', rules: [{ match: { ip: '192.168.0.1/100' }, actions: [] }], path: [0, 'match', 'ip'], message: 'from 0 to 32' },
  { name: 'cidr v6 prefix too long', rules: [{ match: { ip: '2001:db8::/222' }, actions: [] }], path: [0, 'match', 'ip'], message: 'from 0 to 128' },
  { name: 'cidr without a prefix', rules: [{ match: { ip: '10.0.0.0/' }, actions: [] }], path: [0, 'match', 'ip'], message: 'prefix length' },
  { name: 'cidr with a bad address', rules: [{ match: { ip: '10.0.0/8' }, actions: [] }], path: [0, 'match', 'ip'], message: 'not a valid CIDR' },

  // --- Bad label pattern ---
  { name: 'label regex invalid', rules: [{ match: {}, actions: [] }, { match: { labels: { team: '/bar?*/' } }, actions: [] }], path: [1, 'match', 'labels', 'team'], message: 'invalid regular expression' },
  { name: 'label glob invalid', rules: [{ match: { labels: { group: 'adm[' } }, actions: [] }], path: [0, 'match', 'labels', 'group'], message: 'unterminated character class' },
  { name: 'label pattern not a string', rules: [{ match: { labels: { group: 3 } }, actions: [] }], path: [0, 'match', 'labels', 'group'], message: 'must be a string' },
  { name: 'labels not a map', rules: [{ match: { labels: 'admins' }, actions: [] }], path: [0, 'match', 'labels'], message: 'labels must map' },

  // --- Rule shape ---
  { name: 'unknown match key (docker_auth would match everything)', rules: [{ match: { team: 'core' }, actions: [] }], path: [0, 'match', 'team'], message: 'unknown match condition' },
  { name: 'missing match', rules: [{ actions: ['pull'] }], path: [0, 'match'], message: 'match: {}' },
  { name: 'missing actions', rules: [{ match: {} }], path: [0, 'actions'], message: 'actions: []' },
  { name: 'non-string action', rules: [{ match: {}, actions: ['pull', 7] }], path: [0, 'actions', 1], message: 'must be a string' },
  { name: 'pattern that is not a string', rules: [{ match: { account: null }, actions: [] }], path: [0, 'match', 'account'], message: 'must be a string' },
  { name: 'the first bad rule is reported', rules: [{ match: { ip: 'x' }, actions: [] }, { match: { name: '[' }, actions: [] }], path: [0, 'match', 'ip'], message: 'not an IP address' },
];

describe('ACL compile errors', () => {
  it.each(named(compileErrorCases))('%s', (_name, { rules, path, message }) => {
    let caught: unknown;
    try {
      compileAcl(rules as AclRule[]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AclCompileError);
    const error = caught as AclCompileError;
    expect(error.name).toBe('AclCompileError');
    expect(error.path).toEqual(path);
    expect(error.message).toContain(message);
  });
});

const acceptedPatterns: { name: string; match: AclMatch }[] = [
  { name: 'regex placeholder ${account} (RE2 reads $ then a literal {account})', match: { name: '/^${account}$/' } },
  { name: 'glob with a placeholder inside a class', match: { name: '[${account}]' } },
  { name: 'regex leading (?i)', match: { account: '/(?i)^admin$/' } },
  { name: 'regex empty (?) flag group, an RE2 no-op', match: { account: '/(?)a/' } },
  { name: 'glob inverted range [z-a] (Go accepts it)', match: { name: '[z-a]' } },
  { name: 'ip v4-mapped address', match: { ip: '::ffff:10.0.0.1' } },
  { name: 'ip v6 CIDR /128', match: { ip: '::1/128' } },
];

describe('ACL patterns that compile', () => {
  it.each(named(acceptedPatterns))('%s', (_name, { match }) => {
    expect(() => compileAcl([{ match, actions: [] }])).not.toThrow();
  });
});

describe('quoteMeta', () => {
  it.each(
    named([
      { name: 'plain text is unchanged', input: 'alice-1_a/b', want: 'alice-1_a/b' },
      { name: 'every Go QuoteMeta metacharacter is escaped', input: String.raw`\.+*?()|[]{}^$`, want: String.raw`\\\.\+\*\?\(\)\|\[\]\{\}\^\$` },
    ]),
  )('%s', (_name, { input, want }) => {
    expect(quoteMeta(input)).toBe(want);
  });
});
