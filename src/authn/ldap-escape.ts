/**
 * The text a user types goes into LDAP filters and DNs only through these functions: escaped, it
 * can never change the shape of the filter or the DN it lands in (LDAP injection).
 */

const FILTER_SPECIALS = /[\\*()\0]/g;

/**
 * Escapes a value for an LDAP search filter (RFC 4515 §3): `\`, `*`, `(`, `)` and NUL become `\5c`,
 * `\2a`, `\28`, `\29` and `\00`, so that `*` is a literal star, never a wildcard, and `)(uid=*`
 * cannot close the assertion it sits in. Other characters, non-ASCII included, pass as they are
 * (the filter is sent as UTF-8).
 */
export function escapeFilterValue(value: string): string {
  return value.replace(FILTER_SPECIALS, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Escapes a value for one attribute value of a DN (RFC 4514 §2.4): `"`, `+`, `,`, `;`, `<`, `>`, `=`
 * and `\` get a backslash, as do a leading space or `#` and a trailing space; NUL becomes `\00`. So
 * `alice,ou=admins` stays one RDN value instead of moving the DN somewhere else.
 */
export function escapeDnValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value.charAt(i);
    if (c === '\0') out += '\\00';
    else if ('"+,;<>=\\'.includes(c)) out += `\\${c}`;
    else if ((c === ' ' || c === '#') && i === 0) out += `\\${c}`;
    else if (c === ' ' && i === value.length - 1) out += '\\ ';
    else out += c;
  }
  return out;
}

/** Replaces every `${name}` in `template` with its value, escaped by `escape`; other text stays. */
export function fillTemplate(template: string, values: Readonly<Record<string, string>>, escape: (value: string) => string): string {
  return template.replace(/\$\{(\w+)\}/g, (whole, name: string) => {
    const value = Object.hasOwn(values, name) ? values[name] : undefined;
    return value === undefined ? whole : escape(value);
  });
}

/** One `type=value` of an RDN, the value unescaped. */
export interface DnAttribute {
  type: string;
  value: string;
}

/**
 * Parses an RFC 4514 DN into its RDNs (each a list of `type=value`, several when joined by `+`),
 * leftmost first, with escapes (`\,`, `\2C`, UTF-8 as `\c3\a9`) undone. Returns undefined when the
 * text is not a DN. Quoted values (RFC 2253's `"..."`, still sent by some servers) are accepted.
 */
export function parseDn(dn: string): DnAttribute[][] | undefined {
  const rdns: DnAttribute[][] = [];
  let rdn: DnAttribute[] = [];
  let i = 0;
  const n = dn.length;
  if (dn.trim() === '') return [];
  for (;;) {
    // type
    while (i < n && dn[i] === ' ') i++;
    const typeStart = i;
    while (i < n && dn[i] !== '=') i++;
    const type = dn.slice(typeStart, i).trim();
    if (i >= n || !/^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)*)$/.test(type)) return undefined;
    i++; // '='
    // value (spaces around "=" are tolerated, as RFC 2253 parsers do)
    while (i < n && dn[i] === ' ') i++;
    const bytes: number[] = [];
    const pushText = (s: string) => bytes.push(...Buffer.from(s, 'utf8'));
    if (dn[i] === '"') {
      i++;
      while (i < n && dn[i] !== '"') {
        if (dn[i] === '\\' && i + 1 < n) i++;
        pushText(dn.charAt(i));
        i++;
      }
      if (i >= n) return undefined;
      i++; // closing quote
      while (i < n && dn[i] === ' ') i++;
    } else if (dn[i] === '#') {
      // A hex-encoded BER value: kept as written (it names no CN anyone would type).
      const start = i;
      while (i < n && !',+;'.includes(dn.charAt(i))) i++;
      pushText(dn.slice(start, i).trim());
    } else {
      let trailingSpaces = 0;
      while (i < n && !',+;'.includes(dn.charAt(i))) {
        const c = dn.charAt(i);
        if (c === '\\') {
          const hex = dn.slice(i + 1, i + 3);
          if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
            bytes.push(Number.parseInt(hex, 16));
            i += 3;
          } else if (i + 1 < n) {
            pushText(dn.charAt(i + 1));
            i += 2;
          } else {
            return undefined;
          }
          trailingSpaces = 0;
          continue;
        }
        if (c === '"') return undefined;
        pushText(c);
        trailingSpaces = c === ' ' ? trailingSpaces + 1 : 0;
        i++;
      }
      if (trailingSpaces > 0) bytes.splice(bytes.length - trailingSpaces, trailingSpaces);
    }
    rdn.push({ type, value: Buffer.from(bytes).toString('utf8') });
    if (i >= n) {
      rdns.push(rdn);
      return rdns;
    }
    const sep = dn[i];
    i++;
    if (sep !== '+') {
      rdns.push(rdn);
      rdn = [];
    }
  }
}

/**
 * docker_auth's `parse_cn`: the value of the first `CN` in a DN (`cn=Developers,ou=groups,...` →
 * `Developers`); a value that is not a DN, or has no CN, is returned unchanged.
 */
export function commonNameOf(dn: string): string {
  for (const rdn of parseDn(dn) ?? []) {
    for (const attribute of rdn) if (attribute.type.toLowerCase() === 'cn') return attribute.value;
  }
  return dn;
}
