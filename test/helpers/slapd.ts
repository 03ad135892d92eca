/**
 * A real OpenLDAP slapd for the LDAP tests: our own process, on free loopback ports, configured by
 * a slapd.conf written to a temp folder (mdb database, the core/cosine/inetorgperson/nis schemas,
 * the memberof overlay), serving plain LDAP (with StartTLS) and LDAPS with a CA and a server
 * certificate generated here, and seeded with ldapadd. Never the system's slapd, never port 389.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const INSTALL_HINT = 'run `sudo bash scripts/install-test-deps.sh` (Debian packages slapd and ldap-utils)';
const START_TIMEOUT_MS = 15_000;

export const BASE_DN = 'dc=example,dc=org';
export const ADMIN_DN = `cn=admin,${BASE_DN}`;
export const SERVICE_DN = `cn=reader,ou=services,${BASE_DN}`;
export const SERVICE_PASSWORD = 'reader-secret';
export const PEOPLE = `ou=people,${BASE_DN}`;
export const GROUPS = `ou=groups,${BASE_DN}`;
const ADMIN_PASSWORD = 'admin-secret';

/** The seeded users: uid -> password. carol's bind is refused by an ACL (a disabled account). */
export const USERS = {
  alice: 'alice-pw',
  bob: 'bob-pw',
  carol: 'carol-pw',
  'smith, john': 'john-pw',
  erin: 'erin-pw',
  frank: 'frank-pw',
} as const;

export interface Slapd {
  host: '127.0.0.1';
  /** Plain LDAP, also offering StartTLS. */
  port: number;
  /** LDAPS. */
  ldapsPort: number;
  /** The test CA that signed the server certificate (PEM), and the file it is in. */
  caPem: string;
  caFile: string;
  /** A file holding the service account's password (for bind_password_file). */
  servicePasswordFile: string;
  dir: string;
  /** How many BIND operations for `dn` slapd has logged so far (its stats log). */
  binds(dn: string): number;
  logs(): string;
  running(): boolean;
  /** Stops slapd (the data stays); `start()` brings it back on the same ports. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its folder. */
  close(): Promise<void>;
}

async function findExecutable(name: string): Promise<string | undefined> {
  // slapd lives in /usr/sbin, which a non-root PATH may lack.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    try {
      await access(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** Fails (never skips) when slapd or ldapadd is missing, naming the install script. */
export async function requireSlapd(): Promise<{ slapd: string; ldapadd: string }> {
  const [slapd, ldapadd] = await Promise.all([findExecutable('slapd'), findExecutable('ldapadd')]);
  const missing = [slapd ? undefined : 'slapd', ldapadd ? undefined : 'ldapadd'].filter(Boolean);
  if (!slapd || !ldapadd) throw new Error(`the LDAP tests need ${missing.join(' and ')}, which ${missing.length > 1 ? 'are' : 'is'} missing: ${INSTALL_HINT}`);
  for (const schema of ['core', 'cosine', 'inetorgperson', 'nis']) {
    try {
      await access(`/etc/ldap/schema/${schema}.schema`, constants.R_OK);
    } catch {
      throw new Error(`the LDAP tests need /etc/ldap/schema/${schema}.schema (package slapd): ${INSTALL_HINT}`);
    }
  }
  return { slapd, ldapadd };
}

export { freePort } from './free-port.js';
import { freePort } from './free-port.js';

const pem = (label: string, der: ArrayBuffer) =>
  `-----BEGIN ${label}-----\n${(Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;

/** A test CA and a server certificate it signs for 127.0.0.1 and localhost (EC P-256). */
export async function makeServerCertificate(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as never);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKeys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const serverKeys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(Date.now() + 2 * 86_400_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=sts-docker-auth test LDAP CA',
    notBefore,
    notAfter,
    signingAlgorithm: algorithm,
    keys: caKeys as never,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey as never),
    ],
  });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=127.0.0.1',
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingAlgorithm: algorithm,
    publicKey: serverKeys.publicKey as never,
    signingKey: caKeys.privateKey as never,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: 'localhost' },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey as never),
    ],
  });
  return {
    caPem: ca.toString('pem') + '\n',
    certPem: cert.toString('pem') + '\n',
    keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', serverKeys.privateKey)),
  };
}

function slapdConf(dir: string): string {
  const q = (s: string) => JSON.stringify(s);
  return `# generated by test/helpers/slapd.ts
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile ${q(join(dir, 'slapd.pid'))}
argsfile ${q(join(dir, 'slapd.args'))}
TLSCACertificateFile ${q(join(dir, 'ca.pem'))}
TLSCertificateFile ${q(join(dir, 'server.pem'))}
TLSCertificateKeyFile ${q(join(dir, 'server.key'))}

database mdb
suffix ${q(BASE_DN)}
rootdn ${q(ADMIN_DN)}
rootpw ${ADMIN_PASSWORD}
directory ${q(join(dir, 'db'))}
maxsize 16777216
overlay memberof

# carol is "disabled": nobody may authenticate with her password, so her bind is refused.
access to dn.exact="uid=carol,${PEOPLE}" attrs=userPassword
  by * none
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by users read
  by * none
`;
}

function seedLdif(): string {
  const person = (uid: string, cn: string, extra: string[] = []) =>
    [
      `dn: uid=${uid.replace(/,/g, '\\,')},${PEOPLE}`,
      'objectClass: inetOrgPerson',
      `uid: ${uid}`,
      `cn: ${cn}`,
      `sn: ${cn.split(' ').at(-1) ?? cn}`,
      `userPassword: ${USERS[uid as keyof typeof USERS]}`,
      ...extra,
      '',
    ].join('\n');
  const group = (cn: string, members: string[]) =>
    [`dn: cn=${cn},${GROUPS}`, 'objectClass: groupOfNames', `cn: ${cn}`, ...members.map((m) => `member: uid=${m.replace(/,/g, '\\,')},${PEOPLE}`), ''].join('\n');
  return [
    `dn: ${BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n`,
    `dn: ${PEOPLE}\nobjectClass: organizationalUnit\nou: people\n`,
    `dn: ${GROUPS}\nobjectClass: organizationalUnit\nou: groups\n`,
    `dn: ou=services,${BASE_DN}\nobjectClass: organizationalUnit\nou: services\n`,
    `dn: ${SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: ${SERVICE_PASSWORD}\n`,
    person('alice', 'Alice Liddell', ['mail: alice@example.org', 'title: Engineer']),
    person('bob', 'Bob Builder', ['mail: bob@example.org']),
    person('carol', 'Carol Danvers', ['mail: carol@example.org']),
    person('smith, john', 'John Smith', ['mail: john@example.org']),
    // Two entries with one mail address: a filter on mail finds both.
    person('erin', 'Erin Shared', ['mail: shared@example.org']),
    person('frank', 'Frank Shared', ['mail: shared@example.org']),
    // After the people, so that the memberof overlay fills their memberOf.
    group('Devs', ['alice']),
    group('Ops', ['bob']),
    group('Everyone', ['alice', 'bob', 'carol']),
    // A member whose DN needs escaping, for filters built from ${dn}.
    group('Writers', ['smith, john']),
  ].join('\n');
}

function waitForPort(port: number, child: ChildProcess, deadline: number, logs: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        reject(new Error(`slapd exited (${child.exitCode ?? child.signalCode}) before it listened:\n${logs().slice(-4000)}`));
        return;
      }
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`slapd did not listen on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms:\n${logs().slice(-4000)}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

function run(command: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${out}`))));
    child.stdin.end(input ?? '');
  });
}

/** Starts a seeded slapd; call `close()` when done (also kills it if a test fails). */
export async function startSlapd(): Promise<Slapd> {
  const binaries = await requireSlapd();
  const dir = await mkdtemp(join(tmpdir(), 'sts-slapd-'));
  await mkdir(join(dir, 'db'));
  const { caPem, certPem, keyPem } = await makeServerCertificate();
  const caFile = join(dir, 'ca.pem');
  const servicePasswordFile = join(dir, 'service-password');
  await Promise.all([
    writeFile(caFile, caPem),
    writeFile(join(dir, 'server.pem'), certPem),
    writeFile(join(dir, 'server.key'), keyPem, { mode: 0o600 }),
    writeFile(join(dir, 'slapd.conf'), slapdConf(dir)),
    writeFile(servicePasswordFile, `${SERVICE_PASSWORD}\n`),
  ]);
  const [port, ldapsPort] = [await freePort(), await freePort()];

  let child: ChildProcess | undefined;
  let log = '';
  const logs = () => log;

  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    // -d stats: stay in the foreground and log every connection and operation to stderr.
    const proc = spawn(binaries.slapd, ['-f', join(dir, 'slapd.conf'), '-h', `ldap://127.0.0.1:${port}/ ldaps://127.0.0.1:${ldapsPort}/`, '-d', 'stats'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    // If the test process dies without its afterAll, slapd (ours, this PID only) goes with it.
    const reap = () => proc.kill('SIGKILL');
    process.once('exit', reap);
    proc.once('exit', () => process.removeListener('exit', reap));
    proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const deadline = Date.now() + START_TIMEOUT_MS;
    await waitForPort(port, proc, deadline, logs);
    await waitForPort(ldapsPort, proc, deadline, logs);
  };

  const stop = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  };

  try {
    await start();
    await run(binaries.ldapadd, ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', ADMIN_DN, '-w', ADMIN_PASSWORD], seedLdif());
  } catch (err) {
    await stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    host: '127.0.0.1',
    port,
    ldapsPort,
    caPem,
    caFile,
    servicePasswordFile,
    dir,
    binds(dn) {
      // One line per bind request: `conn=N op=M BIND dn="..." method=128`.
      const wanted = `bind dn="${dn.toLowerCase()}" method=`;
      return log
        .toLowerCase()
        .split('\n')
        .filter((line) => line.includes(wanted)).length;
    },
    logs,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
