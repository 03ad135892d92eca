import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { ListenAddress } from './listen.js';

/** What Fastify (and our own code) attached to its server: the new listener answers the same way. */
const HANDLED_EVENTS = ['request', 'clientError', 'checkContinue', 'checkExpectation'] as const;

function listen(server: Server, address: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: Error) => reject(err);
    server.once('error', failed);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off('error', failed);
      resolve();
    });
  });
}

/**
 * A new listening server that answers exactly as `template` does (the same request handlers and
 * timeouts), on another address or protocol, for a reload that moves `server.addr` or switches
 * between HTTP and HTTPS. The caller retires the old one once this one listens. `from` is where
 * the old one listens now (its real port).
 */
export async function moveListener(
  template: Server,
  from: ListenAddress,
  to: ListenAddress,
  tls: { cert: string; key: string } | undefined,
): Promise<Server> {
  const next = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }) : createHttpServer();
  for (const event of HANDLED_EVENTS) for (const handler of template.listeners(event)) next.on(event, handler as (...args: unknown[]) => void);
  next.keepAliveTimeout = template.keepAliveTimeout;
  next.requestTimeout = template.requestTimeout;
  next.headersTimeout = template.headersTimeout;
  next.maxRequestsPerSocket = template.maxRequestsPerSocket;
  next.timeout = template.timeout;
  if (from.port === to.port) {
    // Only a protocol switch on the same address: the port must be free first, so connections
    // arriving in that moment are refused. If it cannot be taken again, the old server goes on.
    template.close();
    await new Promise((resolve) => setImmediate(resolve));
    try {
      await listen(next, to);
    } catch (err) {
      await listen(template, from);
      throw err;
    }
  } else {
    await listen(next, to);
  }
  return next;
}

/**
 * Stops accepting connections; requests in flight finish, and keep-alive connections are closed
 * as soon as they turn idle rather than when the client hangs up.
 */
export function retireListener(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const sweep = setInterval(() => server.closeIdleConnections(), 200);
    sweep.unref();
    const done = () => {
      clearInterval(sweep);
      resolve();
    };
    server.closeIdleConnections();
    if (server.listening) {
      server.close(done);
      return;
    }
    // Closed already (moveListener freed its port): 'close' comes when the last connection ends.
    server.getConnections((_err, count) => (count > 0 ? server.once('close', done) : done()));
  });
}
