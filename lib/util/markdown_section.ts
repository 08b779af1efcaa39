// Replace one "## heading" section of a markdown file (up to the next "## "), or append it,
// atomically: each benchmark rewrites its own section of docs/BENCHMARKS.md and leaves the rest.
import * as fs from 'node:fs';
import { writeFileAtomic } from './atomic_write';

export function writeMarkdownSection(file: string, heading: string, section: string, emptyDoc = '# Benchmarks\n\n'): void {
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : emptyDoc;
  const start = text.indexOf(`${heading}\n`);
  if (start >= 0) {
    const after = start + heading.length + 1;
    const next = text.slice(after).search(/^## /m);
    const end = next >= 0 ? after + next : text.length;
    text = text.slice(0, start) + section + (next >= 0 ? '\n' : '') + text.slice(end);
  } else {
    text = text.replace(/\n*$/, '\n\n') + section;
  }
  writeFileAtomic(file, text);
}
