import type { RunningAuthServer } from './auth-server.js';
import { explain, type RunResult } from './clients.js';
import type { RunningRegistry } from './registry.js';

/** A failed client command with the audit events since `from` and the registry's log tail. */
export function diagnose(result: RunResult, auth: RunningAuthServer, registry: RunningRegistry, from: number): string {
  return `${explain(result)}\naudit: ${JSON.stringify(auth.audit.slice(from))}\nregistry log: ${registry.logs().slice(-2000)}`;
}
