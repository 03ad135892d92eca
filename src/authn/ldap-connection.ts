import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Client, Entry } from 'ldapts';
import { ldapts } from './ldapts.js';
import { BackendUnavailableError } from './errors.js';

/**
 * Connections to one LDAP server, each operation bounded by a deadline, and a small pool of
 * service-account connections for searches. Every failure that is not the server's answer to the
 * operation (refused connection, timeout, TLS failure, a dropped connection) becomes a
 * BackendUnavailableError: a directory outage is answered 503, never 401.
 */

export type LdapTlsMode = 'none' | 'starttls' | 'always';

export interface LdapEndpoint {
  /** The backend name put on outage errors. */
  backend: string;
  host: string;
  port: number;
  tls: LdapTlsMode;
  /** CA certificates (PEM) to verify the server with; the system's when absent. */
  ca?: string;
  insecureSkipVerify: boolean;
  /** The deadline of each operation (connect, TLS, bind, search), in milliseconds. */
  timeoutMs: number;
}

export type SearchScope = 'base' | 'sub';

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(3))}s`;

/** The node error codes that mean the certificate could not be verified. */
const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

class DeadlineError extends Error {}

/** One connection, opened (and upgraded to TLS) before use; it never reconnects by itself. */
export class LdapConnection {
  private readonly sockets = new Set<net.Socket>();
  private destroyed = false;
  private plainOpened = false;
  private secureOpened = false;
  private readonly client: Client;

  private constructor(private readonly endpoint: LdapEndpoint) {
    const where = `${endpoint.host}:${endpoint.port}`;
    // ldapts reconnects on its own when a connection it had drops, unauthenticated and, after
    // StartTLS, in clear text. Each factory below opens one socket per connection, never a
    // second: a dropped connection fails its operation instead, and the pool opens a new one.
    const createConnection = ((port: number, host: string) => {
      if (this.plainOpened || this.destroyed) throw new Error(`the connection to ${where} was closed`);
      this.plainOpened = true;
      return this.track(net.connect(port, host));
    }) as typeof net.connect;
    const createSecureConnection = ((first: number | tls.ConnectionOptions, host?: string, options?: tls.ConnectionOptions) => {
      if (this.secureOpened || this.destroyed) throw new Error(`the connection to ${where} was closed`);
      this.secureOpened = true;
      return this.track(typeof first === 'number' ? tls.connect(first, host ?? endpoint.host, options ?? {}) : tls.connect(first));
    }) as typeof tls.connect;
    this.client = new (ldapts().Client)({
      url: `${endpoint.tls === 'always' ? 'ldaps' : 'ldap'}://${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`,
      timeout: endpoint.timeoutMs,
      connectTimeout: endpoint.timeoutMs,
      // ldapts speaks TLS from the start whenever tlsOptions has a value, so StartTLS gets them
      // only at the upgrade.
      ...(endpoint.tls === 'always' ? { tlsOptions: tlsOptionsOf(endpoint) } : {}),
      createConnection,
      createSecureConnection,
    });
  }

  private track<S extends net.Socket>(socket: S): S {
    // An idle pooled connection must not keep the process alive after the server has closed.
    socket.unref();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return socket;
  }

  /** A connection to the endpoint; with `starttls`, connected and upgraded within the deadline. */
  static async open(endpoint: LdapEndpoint): Promise<LdapConnection> {
    const connection = new LdapConnection(endpoint);
    // Without StartTLS, the first operation connects (ldaps: with the TLS handshake), all within
    // that operation's deadline.
    if (endpoint.tls === 'starttls') await connection.run('StartTLS', () => connection.client.startTLS(tlsOptionsOf(endpoint)));
    return connection;
  }

  /** Whether the connection is still there to be used again. */
  get usable(): boolean {
    return !this.destroyed && this.client.isConnected;
  }

  /** A simple bind. A refusal by the server is thrown as ldapts's ResultCodeError. */
  bind(dn: string, password: string): Promise<void> {
    return this.run('bind', () => this.client.bind(dn, password));
  }

  async search(base: string, scope: SearchScope, filter: string, attributes: readonly string[], sizeLimit: number): Promise<Entry[]> {
    const result = await this.run('search', () =>
      this.client.search(base, { scope, filter, attributes: [...attributes], sizeLimit, derefAliases: 'never' }),
    );
    return result.searchEntries;
  }

  /** Says goodbye politely when it can, and closes the connection either way. */
  close(): void {
    if (this.destroyed) return;
    const sockets = [...this.sockets];
    this.client
      .unbind()
      .catch(() => undefined)
      .finally(() => {
        this.destroyed = true;
        for (const socket of sockets) socket.destroy();
      });
  }

  destroy(): void {
    this.destroyed = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /**
   * Runs one operation under the deadline. The server's own answers (ResultCodeError) pass
   * through; anything else destroys the connection and becomes a BackendUnavailableError.
   */
  private async run<T>(what: string, operation: () => Promise<T>): Promise<T> {
    if (this.destroyed) throw this.outage(what, new Error('the connection was closed'));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineError()), this.endpoint.timeoutMs);
    });
    try {
      return await Promise.race([operation(), deadline]);
    } catch (err) {
      if (err instanceof ldapts().ResultCodeError) throw err;
      this.destroy();
      throw this.outage(what, err);
    } finally {
      clearTimeout(timer);
    }
  }

  private outage(what: string, err: unknown): BackendUnavailableError {
    const { backend, host, port, timeoutMs } = this.endpoint;
    const where = `LDAP server ${host}:${port}`;
    const e = err as Partial<NodeJS.ErrnoException>;
    const message = err instanceof Error ? err.message : String(err);
    let text: string;
    if (err instanceof DeadlineError || /timed? ?out/i.test(message)) {
      text = `${where} did not answer within ${seconds(timeoutMs)} (${what})`;
    } else if (e.code === 'ECONNREFUSED') {
      text = `cannot connect to ${where}: connection refused`;
    } else if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') {
      text = `cannot resolve the LDAP server's host name ${host}`;
    } else if (typeof e.code === 'string' && TLS_VERIFY_CODES.has(e.code)) {
      text =
        `TLS with ${where} failed: its certificate cannot be verified (${message}); ` +
        'set ldap_auth.ca_certificate to the CA that signed it';
    } else if (/tls|ssl|certificate|handshake|alert/i.test(message) || (typeof e.code === 'string' && e.code.startsWith('ERR_SSL'))) {
      text = `TLS with ${where} failed (${what}): ${message}`;
    } else {
      text = `${where} failed (${what}): ${message.split('\n')[0] ?? message}`;
    }
    return new BackendUnavailableError(backend, text, { cause: err });
  }
}

function tlsOptionsOf(endpoint: LdapEndpoint): tls.ConnectionOptions {
  return {
    host: endpoint.host,
    // SNI takes a host name only, never an address (RFC 6066 §3).
    ...(net.isIP(endpoint.host) ? {} : { servername: endpoint.host }),
    ...(endpoint.ca ? { ca: endpoint.ca } : {}),
    rejectUnauthorized: !endpoint.insecureSkipVerify,
    minVersion: 'TLSv1.2',
  };
}

/** Waiters for a pool slot, first come first served. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }

  /** Resolves with true once a slot is taken, or false after `timeoutMs`. */
  take(timeoutMs: number): Promise<boolean> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const grant = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const index = this.waiting.indexOf(grant);
        if (index >= 0) this.waiting.splice(index, 1);
        resolve(false);
      }, timeoutMs);
      this.waiting.push(grant);
    });
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/**
 * At most `size` service-account connections, kept open between requests. A connection that
 * failed is dropped; one that was idle and turns out dead is replaced once.
 */
export class LdapPool {
  private readonly idle: LdapConnection[] = [];
  private readonly slots: Slots;
  private closed = false;

  constructor(
    private readonly endpoint: LdapEndpoint,
    private readonly size: number,
    /** Opens and binds a new service connection. */
    private readonly connect: () => Promise<LdapConnection>,
  ) {
    this.slots = new Slots(size);
  }

  async use<T>(operation: (connection: LdapConnection) => Promise<T>): Promise<T> {
    if (this.closed) throw new BackendUnavailableError(this.endpoint.backend, 'the LDAP connection pool is closed');
    if (!(await this.slots.take(this.endpoint.timeoutMs))) {
      throw new BackendUnavailableError(
        this.endpoint.backend,
        `all ${this.size} LDAP connections stayed busy for ${seconds(this.endpoint.timeoutMs)} (ldap_auth.pool_size)`,
      );
    }
    try {
      for (let attempt = 0; ; attempt++) {
        let connection: LdapConnection | undefined;
        while (!connection) {
          const candidate = this.idle.pop();
          if (!candidate) break;
          if (candidate.usable) connection = candidate;
          else candidate.destroy();
        }
        const reused = connection !== undefined;
        connection ??= await this.connect();
        try {
          const result = await operation(connection);
          this.idle.push(connection);
          return result;
        } catch (err) {
          if (err instanceof ldapts().ResultCodeError) {
            // The server answered; the connection is fine.
            this.idle.push(connection);
            throw err;
          }
          connection.destroy();
          // A kept connection the server closed meanwhile (idle timeout, restart): one new try.
          const timedOut = err instanceof BackendUnavailableError && /did not answer/.test(err.message);
          if (!reused || attempt > 0 || timedOut) throw err;
        }
      }
    } finally {
      if (this.closed) this.drain();
      this.slots.give();
    }
  }

  private drain(): void {
    for (const connection of this.idle.splice(0)) connection.close();
  }

  close(): void {
    this.closed = true;
    this.drain();
  }
}
