// Stop strings for streamed generation: text is released as soon as it cannot be the start of a
// stop string, so a stop string split across tokens is caught before any of it is printed.
import { W4A8Error } from '../util/errors';

export interface StopScan {
  /** Text that is now safe to print (may be empty). */
  release: string;
  /** The stop string found, when one was: generation ends and the text from it on is dropped. */
  matched?: string;
}

export class StopTextScanner {
  private held = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Adds the next piece of generated text. */
  push(piece: string): StopScan {
    this.held += piece;
    let at = -1;
    let matched: string | undefined;
    for (const s of this.stops) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        matched = s;
      }
    }
    if (matched !== undefined) {
      const release = this.held.slice(0, at);
      this.held = '';
      return { release, matched };
    }
    // Hold back the longest tail that some stop string begins with.
    let keep = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.held.length); k > keep; k--) {
        if (this.held.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    const release = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { release };
  }

  /** The text still held back, when generation ends for another reason. */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }
}

/** Checks a list of stop strings (non-empty strings; an empty list means none). */
export function checkStopStrings(stop: unknown): string[] {
  if (stop === undefined) return [];
  if (!Array.isArray(stop)) throw new TypeError(`Expected stop to be an array of strings but received ${typeof stop}`);
  for (const [i, s] of stop.entries()) {
    if (typeof s !== 'string') throw new TypeError(`Expected stop[${i}] to be a string but received ${typeof s}`);
    if (s === '') throw new W4A8Error(`stop[${i}] is empty; an empty stop string would end generation before its first token`);
  }
  return stop as string[];
}
