import type { AuditEvent, AuditSink } from '../../src/observability/audit.js';
import { createLogger } from '../../src/observability/logger.js';
import { createServer, type StsServer } from '../../src/server/app.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { loadTestConfig, type KeyDir } from './fixtures.js';

export class MemoryAudit implements AuditSink {
  readonly events: AuditEvent[] = [];
  write(event: AuditEvent): void {
    this.events.push(event);
  }
  last(): AuditEvent {
    const e = this.events.at(-1);
    if (!e) throw new Error('no audit event');
    return e;
  }
}

export async function startInProcess(
  keys: KeyDir,
  config: ConfigInput,
  options: { now?: () => number } = {},
): Promise<{ server: StsServer; audit: MemoryAudit }> {
  const audit = new MemoryAudit();
  const server = await createServer(await loadTestConfig(keys, config), { logger: createLogger({ level: 'silent' }), audit, ...options });
  await server.app.ready();
  return { server, audit };
}

export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
