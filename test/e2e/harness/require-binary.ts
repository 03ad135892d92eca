import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

const INSTALL_HINT = 'run `sudo bash scripts/install-test-deps.sh` (Debian: docker-registry, skopeo, podman, containerd, docker.io)';

/** The absolute path of an executable on PATH, or undefined. */
export async function findBinary(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this PATH entry; keep looking
    }
  }
  return undefined;
}

/**
 * Resolves the binaries an e2e suite drives, or throws naming every missing one.
 * It throws rather than skipping on purpose: a CI machine without the real registry and clients
 * must go red, not report a green run that tested nothing.
 */
export async function requireBinaries(names: readonly string[]): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const name of names) {
    const path = await findBinary(name);
    if (path === undefined) missing.push(name);
    else found[name] = path;
  }
  if (missing.length > 0) {
    throw new Error(`e2e tests need ${missing.join(', ')} on PATH, which ${missing.length > 1 ? 'are' : 'is'} missing: ${INSTALL_HINT}`);
  }
  return found;
}

/** The path of one required binary (see requireBinaries). */
export async function requireBinary(name: string): Promise<string> {
  const found = await requireBinaries([name]);
  const path = found[name];
  if (path === undefined) throw new Error(`e2e tests need ${name}: ${INSTALL_HINT}`);
  return path;
}

/** podman is driven rootful (vfs storage, private --root); rootless would need subuids and a user session. */
export function requireRoot(why: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(`${why} must run as root (uid 0); CI runs as root, run the e2e suite there or with sudo`);
  }
}
