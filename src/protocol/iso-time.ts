/**
 * `new Date(ms).toISOString()` without a Date per call: a token request formats the time three
 * times (the response's `issued_at`, the audit event and the audit line), and at thousands of
 * requests per second nearly every one of them falls in the same second as the last. The part up
 * to the seconds is kept and only the milliseconds are appended.
 */
let cachedSecond = Number.NaN;
let cachedPrefix = '';

const MS_DIGITS = Array.from({ length: 1000 }, (_, ms) => `.${String(ms).padStart(3, '0')}Z`);

/** The RFC 3339 UTC form of an epoch time in ms, exactly as `Date.prototype.toISOString` writes it. */
export function isoTime(time: number): string {
  // Date keeps whole milliseconds, cut toward zero.
  const ms = Math.trunc(time);
  const second = Math.floor(ms / 1000);
  // Only years 0000 to 9999 have the short form; anything else (and NaN) goes through Date.
  if (second !== cachedSecond) {
    const full = new Date(second * 1000).toISOString();
    if (full.length !== 24) return new Date(time).toISOString();
    cachedSecond = second;
    cachedPrefix = full.slice(0, 19);
  }
  return cachedPrefix + (MS_DIGITS[ms - second * 1000] as string);
}
