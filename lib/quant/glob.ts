// --exclude patterns: shell-style globs matched against a layer's node name and its weight name:
// * any run of characters, ? one character, [abc] / [a-z] / [!abc] one character of a class.
// A pattern is checked when the set is built (an unclosed [ is a usage error, exit 2), and a
// pattern that matches no layer is refused by the plan (a typo would otherwise quantize everything).
import { UsageError } from '../util/errors';

const escapeRe = (ch: string): string => ch.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '[') {
      // The class runs to the next ] (a ] right after [ or [! belongs to the class, as in sh).
      let j = i + 1;
      const negate = glob[j] === '!';
      if (negate) j++;
      let body = '';
      let first = true;
      while (j < glob.length && (glob[j] !== ']' || first)) {
        const c = glob[j];
        if (c === '-' && !first && j + 1 < glob.length && glob[j + 1] !== ']') {
          const lo = body.length > 0 ? glob[j - 1] : '';
          const hi = glob[j + 1];
          if (lo > hi) throw new UsageError(`--exclude pattern "${glob}" has the range ${lo}-${hi}, which is backwards; write ${hi}-${lo}`);
          body += '-';
        } else body += escapeRe(c);
        first = false;
        j++;
      }
      if (j >= glob.length) throw new UsageError(`--exclude pattern "${glob}" opens a [ class that never closes; close it with ] or match a literal [ with ?`);
      re += `[${negate ? '^' : ''}${body}]`;
      i = j;
    } else re += escapeRe(ch);
  }
  try {
    return new RegExp(`^${re}$`);
  } catch {
    throw new UsageError(`--exclude pattern "${glob}" is not a valid glob (* ? [abc] [a-z] [!abc])`);
  }
}

export class GlobSet {
  private readonly patterns: RegExp[];
  private readonly used: boolean[];
  constructor(readonly globs: string[]) {
    for (const g of globs) {
      if (typeof g !== 'string' || g.length === 0) throw new TypeError(`--exclude patterns must be non-empty strings; got ${JSON.stringify(g)}`);
    }
    this.patterns = globs.map(globToRegExp);
    this.used = globs.map(() => false);
  }
  /** True when any pattern matches any of the names (and remembers which patterns did). */
  matches(...names: string[]): boolean {
    let hit = false;
    this.patterns.forEach((p, i) => {
      if (names.some((n) => n !== '' && p.test(n))) {
        this.used[i] = true;
        hit = true;
      }
    });
    return hit;
  }
  /** The patterns that matched no name so far. */
  unmatched(): string[] {
    return this.globs.filter((_, i) => !this.used[i]);
  }
}
