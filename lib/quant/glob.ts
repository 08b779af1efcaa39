// --exclude patterns: shell-style globs (* any run of characters, ? one character) matched
// against a layer's node name and its weight name.

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export class GlobSet {
  private readonly patterns: RegExp[];
  constructor(readonly globs: string[]) {
    for (const g of globs) {
      if (typeof g !== 'string' || g.length === 0) throw new TypeError(`--exclude patterns must be non-empty strings; got ${JSON.stringify(g)}`);
    }
    this.patterns = globs.map(globToRegExp);
  }
  /** True when any pattern matches any of the names. */
  matches(...names: string[]): boolean {
    return this.patterns.some((p) => names.some((n) => n !== '' && p.test(n)));
  }
}
