/**
 * The reference endpoint of the bench: the least a token server can do per request, to compare
 * sts-docker-auth against on the same machine in the same run (performance-baselines.md §3 did the
 * same by hand). Fastify, one route, and `node:crypto`: it parses the scope, builds the claims,
 * signs one JWT (ES256 synchronously, RS256 in the thread pool, as the server does) and answers the
 * Docker token JSON. No authentication, no ACL, no audit line, no logger.
 *
 * Environment: REF_KEY (PEM private key file), REF_ALG (ES256 or RS256), REF_PORT, REF_HOST
 * (default 127.0.0.1), REF_WORKERS (default 1; more runs a node:cluster primary with that many
 * workers). Prints `{"msg":"listening","url":...}` on stdout once it listens.
 */
import cluster from 'node:cluster';
import { createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const alg = process.env.REF_ALG === 'RS256' ? 'RS256' : 'ES256';
const host = process.env.REF_HOST ?? '127.0.0.1';
const port = Number(process.env.REF_PORT ?? 0);
const workers = Number(process.env.REF_WORKERS ?? 1);

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const key: KeyObject = createPrivateKey(readFileSync(process.env.REF_KEY ?? '', 'utf8'));
  const header = Buffer.from(JSON.stringify({ alg, typ: 'JWT', kid: 'reference' })).toString('base64url');
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

  const signAsync = (input: Buffer): Promise<Buffer> =>
    alg === 'RS256'
      ? new Promise((ok, fail) => sign('sha256', input, key, (err, sig) => (err ? fail(err) : ok(sig))))
      : Promise.resolve(sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' }));

  const app = Fastify({ logger: false });
  app.get('/auth', async (req) => {
    const query = req.query as { service?: string; scope?: string | string[] };
    const scopes = query.scope === undefined ? [] : Array.isArray(query.scope) ? query.scope : [query.scope];
    const access = scopes.map((scope) => {
      const [type = '', name = '', actions = ''] = scope.split(':');
      return { type, name, actions: actions.split(',') };
    });
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: 'reference', sub: '', aud: query.service ?? '', exp: now + 300, nbf: now - 1, iat: now, jti: randomBytes(16).toString('base64url'), access };
    const input = `${header}.${b64(claims)}`;
    const token = `${input}.${(await signAsync(Buffer.from(input))).toString('base64url')}`;
    return { token, access_token: token, expires_in: 300, issued_at: new Date(now * 1000).toISOString() };
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.listen({ host, port });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://${host}:${bound}`, pid: process.pid })}\n`);
  const stop = () => {
    void app.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
