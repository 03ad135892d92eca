export interface ConfigIssue {
  /** Where in the file, e.g. `acl[3].match.ip`. */
  path: string;
  message: string;
}

/** A config that cannot run: names the file, each key path and what is wrong with it. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super(`${file}: invalid configuration\n${issues.map((i) => `  ${i.path || '(top level)'}: ${i.message}`).join('\n')}`);
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else {
      const key = String(part);
      out += /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? (out ? `.${key}` : key) : `[${JSON.stringify(key)}]`;
    }
  }
  return out;
}
