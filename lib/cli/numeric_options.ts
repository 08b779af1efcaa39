// The one rule for numbers on the command line: every numeric option is range-checked here, and a
// bad value is a UsageError (exit 2) naming the option, the accepted range and the value given.
// Limits that depend on the model (a window longer than its context, a group size that does not
// divide K) are checked later, after the model is open and before any work (exit 1).
import { UsageError } from '../util/errors';

export interface NumberRange {
  /** Whole numbers only (token counts, lengths, ids). */
  integer?: boolean;
  min: number;
  /** Inclusive; omitted means no upper bound (finite values only). */
  max?: number;
  /** When true, the minimum itself is excluded (a positive amount of memory). */
  exclusiveMin?: boolean;
}

function describeRange(r: NumberRange): string {
  const kind = r.integer ? 'an integer' : 'a number';
  if (r.exclusiveMin && r.max === undefined) return `${kind} > ${r.min}`;
  if (r.max === undefined) return `${kind} >= ${r.min}`;
  return `${kind} in ${r.exclusiveMin ? '(' : ''}${r.min}..${r.max}${r.exclusiveMin ? ']' : ''}`;
}

/** Checks `--<name> <value>` against its range; returns the value, or throws a UsageError (exit 2). */
export function numberOption(name: string, value: unknown, range: NumberRange): number {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (!range.integer || Number.isInteger(value)) &&
    (range.exclusiveMin ? value > range.min : value >= range.min) &&
    (range.max === undefined || value <= range.max);
  if (!ok) throw new UsageError(`--${name} must be ${describeRange(range)}, got ${String(value)}`);
  return value as number;
}

/** An integer option with a lower (and optional upper) bound. */
export function integerOption(name: string, value: unknown, min: number, max?: number): number {
  return numberOption(name, value, { integer: true, min, max });
}

/** Same, for an option that may be absent. */
export function optionalIntegerOption(name: string, value: unknown, min: number, max?: number): number | undefined {
  return value === undefined ? undefined : integerOption(name, value, min, max);
}
