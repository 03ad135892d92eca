/**
 * Labels as an external backend (a program, a webhook) reports them: `{"name": ["value", ...]}`.
 * Missing or null means none (Go reads a null list as empty too); anything else malformed is an
 * error, never silently dropped, since ACL rules grant by label.
 */
export function parseLabels(raw: unknown): Record<string, string[]> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error('"labels" is not an object');
  const entries: [string, string[]][] = [];
  for (const [name, values] of Object.entries(raw)) {
    if (name === '') throw new Error('"labels" has an empty name');
    if (values === null) {
      entries.push([name, []]);
      continue;
    }
    if (!Array.isArray(values) || !values.every((v): v is string => typeof v === 'string')) {
      throw new Error(`label ${JSON.stringify(name.slice(0, 100))} is not a list of strings`);
    }
    entries.push([name, values]);
  }
  // fromEntries defines own properties, so a label named "__proto__" stays a label.
  return Object.fromEntries(entries);
}
