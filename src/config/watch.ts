import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

export interface ConfigWatcher {
  close(): void;
}

/**
 * Calls `onChange` (debounced) when the config file may have changed. It watches the file AND its
 * folder: an editor that writes a new file and renames it over the old one leaves a watch on the
 * old inode, and a Kubernetes ConfigMap swaps a `..data` symlink in the folder without touching
 * the file's name. Any event in the folder counts; the caller compares contents.
 */
export function watchConfigFile(file: string, onChange: () => void, debounceMs = 500): ConfigWatcher {
  const full = resolve(file);
  let timer: NodeJS.Timeout | undefined;
  let fileWatcher: FSWatcher | undefined;
  let closed = false;
  const fire = () => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      // The file may be a new inode now: watch that one.
      watchFile();
      onChange();
    }, debounceMs);
    timer.unref();
  };
  const watchFile = () => {
    fileWatcher?.close();
    fileWatcher = undefined;
    try {
      fileWatcher = watch(full, { persistent: false }, fire);
      fileWatcher.on('error', () => fileWatcher?.close());
    } catch {
      // Missing for a moment (mid-rename): the folder watch sees it come back.
    }
  };
  watchFile();
  const dirWatcher = watch(dirname(full), { persistent: false }, (_event, name) => {
    // Other files in the folder change too (logs, the store); only ours and symlink swaps count.
    if (name === null || name === basename(full) || name.startsWith('..')) fire();
  });
  dirWatcher.on('error', () => dirWatcher.close());
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      fileWatcher?.close();
      dirWatcher.close();
    },
  };
}
