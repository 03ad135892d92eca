import { z } from 'zod';

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A duration in whole seconds, or a string such as `90s`, `15m`, `12h`, `30d`; parsed to seconds. */
export const durationSchema = z.union([
  z.int().positive(),
  z
    .string()
    .regex(DURATION, 'must be a number of seconds or a duration such as 90s, 15m, 12h or 30d')
    .transform((value) => {
      const [, amount, unit] = DURATION.exec(value) as RegExpExecArray;
      return Number(amount) * (UNIT_SECONDS[unit as string] as number);
    }),
]);
