import { describe, expect, it } from 'vitest';
import { LogAuditSink, type AuditEvent } from '../../src/observability/audit.js';
import { openAuditOutput } from '../../src/observability/audit-destination.js';
import { createAuditLogger, createLogger, LOG_WRITE_BYTES, streamOf } from '../../src/observability/logger.js';

/** A pino destination that keeps every line. */
function capture(): { lines: string[]; stream: { write(line: string): void } } {
  const lines: string[] = [];
  return { lines, stream: { write: (line: string) => void lines.push(line) } };
}

const SECRET = 'Basic YWxpY2U6aHVudGVyMg==';

const sample: AuditEvent = {
  time: '2026-11-30T20:00:00.000Z',
  ip: '203.0.113.7',
  method: 'POST',
  grant_type: 'password',
  offline: true,
  client_id: 'docker',
  account: 'alice',
  backend: 'users',
  service: 'registry.example',
  requested: ['repository:library/app:pull,push'],
  granted: ['repository:library/app:pull'],
  result: 'issued',
  reason: 'repository:library/app: acl rule 1',
  duration_ms: 0.731,
};

/** The audit line as the sink wrote it before it had its own logger: a redacting child logger and the event spread. */
function previousLine(event: AuditEvent): Record<string, unknown> {
  const { lines, stream } = capture();
  const logger = createLogger({ level: 'silent' }, stream).child({}, { level: 'info' });
  const { time: _started, ...fields } = event;
  const level = event.result === 'error' ? 'error' : event.result === 'issued' ? 'info' : 'warn';
  logger[level]({ audit: 'token', ...fields }, 'token decision');
  return JSON.parse(lines[0] as string) as Record<string, unknown>;
}

function currentLines(event: AuditEvent): string[] {
  const { lines, stream } = capture();
  new LogAuditSink(createAuditLogger(stream)).write(event);
  return lines;
}

describe('the audit line', () => {
  it('is the same line as before, key for key and in the same order', () => {
    const lines = currentLines(sample);
    expect(lines).toHaveLength(1);
    const line = lines[0] as string;
    expect(line.endsWith('\n')).toBe(true);
    const now = JSON.parse(line) as Record<string, unknown>;
    const before = previousLine(sample);
    expect(typeof now.time).toBe('string');
    expect(Number.isNaN(Date.parse(now.time as string))).toBe(false);
    expect({ ...now, time: 'T' }).toEqual({ ...before, time: 'T' });
    expect(Object.keys(now)).toEqual(Object.keys(before));
    expect(Object.keys(now)).toEqual([
      'level', 'time', 'name', 'audit', 'ip', 'method', 'grant_type', 'offline', 'client_id', 'account',
      'backend', 'service', 'requested', 'granted', 'result', 'reason', 'duration_ms', 'msg',
    ]);
    expect(now).toMatchObject({ level: 30, name: 'sts-docker-auth', audit: 'token', msg: 'token decision' });
  });

  it('keeps the levels: warn for refusals, error for errors, undefined fields left out', () => {
    const refused = JSON.parse(currentLines({ ...sample, result: 'unauthorized', account: undefined, backend: undefined })[0] as string) as Record<string, unknown>;
    expect(refused.level).toBe(40);
    expect('account' in refused).toBe(false);
    expect(refused).toEqual({ ...previousLine({ ...sample, result: 'unauthorized', account: undefined, backend: undefined }), time: refused.time });
    const failed = JSON.parse(currentLines({ ...sample, result: 'error' })[0] as string) as Record<string, unknown>;
    expect(failed.level).toBe(50);
  });

  it('cannot carry a secret in a key that is not an audit field', () => {
    // A caller that slipped request data into the event object: none of it may reach the line.
    const polluted = {
      ...sample,
      password: 'hunter2',
      token: 'eyJhbGciOi.secret.token',
      refresh_token: 'stsrt_secret',
      authorization: SECRET,
      headers: { authorization: SECRET, cookie: 'sso=secret' },
    } as AuditEvent;
    const line = currentLines(polluted)[0] as string;
    for (const secret of ['hunter2', 'eyJhbGciOi', 'stsrt_secret', SECRET, 'sso=secret', 'YWxpY2U6']) expect(line).not.toContain(secret);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(Object.keys(JSON.parse(currentLines(sample)[0] as string) as object));
  });

  it('goes into the server log stream, which keeps redacting its own lines', () => {
    const { lines, stream } = capture();
    const logger = createLogger({ level: 'silent' }, stream);
    const output = openAuditOutput({ stdout: true }, '/nonexistent', logger);
    output.sink.write(sample);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ audit: 'token', account: 'alice', msg: 'token decision' });

    const general = capture();
    createLogger({ level: 'info' }, general.stream).info({ password: 'hunter2', req: { headers: { authorization: SECRET } } }, 'x');
    expect(general.lines[0]).not.toContain('hunter2');
    expect(general.lines[0]).not.toContain(SECRET);
  });
});

describe('the log stream', () => {
  it('writes up to 1 MiB at a time, so that the audit trail keeps up under full load', () => {
    // sonic-boom's default, 16 KiB per completed write, fell behind one line per token and
    // buffered hundreds of MB in a 5-minute benchmark (performance.md).
    const stream = streamOf(createLogger({ level: 'silent' })) as unknown as { maxWrite: number; sync: boolean };
    expect(stream.maxWrite).toBe(LOG_WRITE_BYTES);
    expect(LOG_WRITE_BYTES).toBeGreaterThanOrEqual(1024 * 1024);
    expect(stream.sync).toBe(false);
  });
});
