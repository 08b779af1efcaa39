// Generated blocks inside hand-written docs. A doc marks each generated part with
//   <!-- generated:NAME -->  ...  <!-- /generated:NAME -->
// and a writer replaces only what lies between the markers: numbers come from the generator,
// observations stay where a person wrote them. A missing marker is an error, never an append.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function markers(name) {
  return { open: `<!-- generated:${name} -->`, close: `<!-- /generated:${name} -->` };
}

/** Returns `text` with each named block's content replaced; throws naming a block whose markers are missing. */
function replaceBlocks(text, blocks) {
  let out = text;
  for (const [name, content] of Object.entries(blocks)) {
    const { open, close } = markers(name);
    const start = out.indexOf(open);
    const end = out.indexOf(close);
    if (start < 0 || end < start) throw new Error(`the doc has no block "${name}": add the lines ${open} and ${close} where it belongs`);
    out = `${out.slice(0, start + open.length)}\n${content.replace(/\n*$/, '\n')}${out.slice(end)}`;
  }
  return out;
}

/** Replaces the blocks in a file, atomically (temporary file, then rename). */
function writeBlocks(file, blocks) {
  const text = replaceBlocks(fs.readFileSync(file, 'utf8'), blocks);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** A path as a reader of the doc would type it: relative to the repository root, never this machine's absolute path. */
function shownPath(p, root = process.cwd()) {
  return path.isAbsolute(p) ? path.relative(root, p) || '.' : p;
}

module.exports = { replaceBlocks, writeBlocks, shownPath, markers };
