// The llama2.c tokenizer (tok*.bin written by llama2.c's tokenizer.py from a SentencePiece model).
// Encoding reproduces run.c's `encode` token for token; only the merge loop is restructured
// (a heap over a linked list instead of a rescan per merge) so 400 KB encode in well under a second.
import { W4A8Error } from '../util/errors';
import type { Tokenizer } from './tokenizer';

/** llama2.c hard-codes these ids: <unk>=0, <s>=1, </s>=2, and raw bytes start at 3. */
export const LLAMA2C_BOS = 1;
export const LLAMA2C_EOS = 2;
const BYTE_FALLBACK_OFFSET = 3;
/** run.c starts its best score at -1e10f: a merge must score strictly above it. */
const NO_MERGE_SCORE = Math.fround(-1e10);

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{1,2})/;

export class Llama2cTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly maxTokenLength: number;
  /** Token pieces as raw bytes (what run.c stores); `scores[i]` is the float32 merge score. */
  readonly pieces: readonly Uint8Array[];
  readonly scores: Float32Array;
  /** Piece bytes as a latin1 key -> id, for run.c's exact-match `str_lookup`. */
  private readonly lookup = new Map<string, number>();
  private readonly keys: string[];
  private readonly dummyPrefixId: number;

  constructor(pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    if (pieces.length !== scores.length) throw new RangeError(`pieces (${pieces.length}) and scores (${scores.length}) differ in length`);
    this.pieces = pieces;
    this.scores = scores;
    this.vocabSize = pieces.length;
    this.maxTokenLength = maxTokenLength;
    this.bosId = this.vocabSize > LLAMA2C_BOS ? LLAMA2C_BOS : undefined;
    this.eosId = this.vocabSize > LLAMA2C_EOS ? LLAMA2C_EOS : undefined;
    // run.c compares C strings: a piece ends at its first NUL byte.
    this.keys = pieces.map((p) => {
      const nul = p.indexOf(0);
      return Buffer.from(nul < 0 ? p : p.subarray(0, nul)).toString('latin1');
    });
    // SentencePiece pieces are unique; if a file repeats one, the lowest id wins.
    this.keys.forEach((key, id) => {
      if (!this.lookup.has(key)) this.lookup.set(key, id);
    });
    this.dummyPrefixId = this.lookup.get(' ') ?? -1;
  }

  /** Parse a tok*.bin image; `source` names it in error messages. */
  static fromBytes(bytes: Uint8Array, source = 'tokenizer'): Llama2cTokenizer {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 4) throw new W4A8Error(`${source} is not a llama2.c tokenizer: ${bytes.byteLength} bytes, too short for its header`);
    const maxTokenLength = view.getInt32(0, true);
    if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) {
      throw new W4A8Error(`${source} is not a llama2.c tokenizer: max_token_length is ${maxTokenLength}; expected a tok*.bin written by llama2.c's tokenizer.py`);
    }
    // The file does not store the vocabulary size: entries run to the end of the file.
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let off = 4;
    while (off < bytes.byteLength) {
      if (off + 8 > bytes.byteLength) throw new W4A8Error(`${source} is truncated: token ${pieces.length} at byte ${off} has no complete score and length`);
      const score = view.getFloat32(off, true);
      const len = view.getInt32(off + 4, true);
      off += 8;
      if (len < 0 || len > maxTokenLength || off + len > bytes.byteLength) {
        throw new W4A8Error(`${source} is malformed: token ${pieces.length} has length ${len} (max_token_length ${maxTokenLength}, ${bytes.byteLength - off} bytes left)`);
      }
      pieces.push(bytes.slice(off, off + len));
      scores.push(score);
      off += len;
    }
    if (pieces.length < 3) throw new W4A8Error(`${source} has only ${pieces.length} tokens; a llama2.c tokenizer has at least <unk>, <s>, </s>`);
    return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxTokenLength);
  }

  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    // run.c takes a C string and never sees a NUL; here a NUL simply falls back to byte token <0x00>.
    const input = Buffer.from(text, 'utf8');
    const tokens: number[] = [];
    if (opts.bos) tokens.push(LLAMA2C_BOS);
    if (input.length > 0) {
      if (this.dummyPrefixId < 0) throw new W4A8Error('this llama2.c tokenizer has no " " piece for the dummy prefix; it cannot encode text');
      tokens.push(this.dummyPrefixId);
    }
    this.splitCodepoints(input, tokens);
    // BOS stays in the merge list, as in run.c (its piece "\n<s>\n" never merges in practice).
    return this.mergePairs(tokens);
  }

  /** run.c's UTF-8 walk: each codepoint (at most 4 bytes) is a piece if the vocabulary has it, else its bytes + 3. */
  private splitCodepoints(input: Uint8Array, out: number[]): void {
    let i = 0;
    while (i < input.length) {
      let end = i + 1;
      while (end < input.length && (input[end] & 0xc0) === 0x80 && end - i < 4) end++;
      const id = this.lookup.get(Buffer.from(input.subarray(i, end)).toString('latin1'));
      if (id !== undefined) {
        out.push(id);
      } else {
        for (let b = i; b < end; b++) {
          const id = input[b] + BYTE_FALLBACK_OFFSET;
          if (id >= this.vocabSize) throw new W4A8Error(`byte 0x${input[b].toString(16)} needs byte token ${id}, but this tokenizer has only ${this.vocabSize} tokens`);
          out.push(id);
        }
      }
      i = end;
    }
  }

  /**
   * Repeatedly merge the adjacent pair whose concatenation is a piece with the highest score,
   * leftmost first on ties (run.c scans left to right and replaces only on a strictly greater
   * score). Nodes keep their original index, so "leftmost" is the smaller left index.
   */
  private mergePairs(ids: number[]): number[] {
    const n = ids.length;
    if (n < 2) return ids;
    const tok = Int32Array.from(ids);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    // A node's version changes whenever its token does or it dies; heap entries remember the
    // versions they saw, so a stale pair is recognised when popped (lazy deletion).
    const version = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    const push = (left: number): void => {
      const right = next[left];
      if (right < 0) return;
      const id = this.lookup.get(this.keys[tok[left]] + this.keys[tok[right]]);
      if (id === undefined || !(this.scores[id] > NO_MERGE_SCORE)) return;
      heap.push({ score: this.scores[id], left, right, leftVersion: version[left], rightVersion: version[right], merged: id });
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    for (let top = heap.pop(); top; top = heap.pop()) {
      const { left, right } = top;
      if (next[left] !== right || version[left] !== top.leftVersion || version[right] !== top.rightVersion) continue;
      tok[left] = top.merged;
      version[left]++;
      version[right]++;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      next[right] = -1;
      if (prev[left] >= 0) push(prev[left]);
      push(left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(tok[i]);
    return out;
  }

  /** The piece run.c's `decode(prev, id)` yields, as bytes: no leading space after BOS, <0xXX> as its byte. */
  decodeTokenBytes(id: number, previousId?: number): Uint8Array {
    this.checkId(id);
    let piece = this.keys[id];
    if (previousId === LLAMA2C_BOS && piece.startsWith(' ')) piece = piece.slice(1);
    const byte = BYTE_TOKEN.exec(piece);
    if (byte) return Uint8Array.of(parseInt(byte[1], 16));
    return Buffer.from(piece, 'latin1');
  }

  /**
   * Text of one token as llama2.c's generate prints it (`decode` then `safe_printf`): a lone
   * byte that is neither printable ASCII nor whitespace prints nothing. Streaming UTF-8 beyond
   * ASCII needs decodeTokenBytes or decode(ids).
   */
  decodeToken(id: number, previousId?: number): string {
    const piece = this.decodeTokenBytes(id, previousId);
    if (piece.length === 1 && !isPrintableOrSpace(piece[0])) return '';
    return Buffer.from(piece).toString('utf8');
  }

  /**
   * Decode a sequence: BOS/EOS/<unk> are skipped, byte tokens are joined into UTF-8, and the
   * space the encoder added as dummy prefix is removed at the start (as SentencePiece does).
   */
  decode(ids: number[]): string {
    const parts: Uint8Array[] = [];
    let prev: number | undefined = LLAMA2C_BOS;
    for (const id of ids) {
      this.checkId(id);
      if (id <= LLAMA2C_EOS) {
        if (id === LLAMA2C_BOS) prev = LLAMA2C_BOS;
        continue;
      }
      parts.push(this.decodeTokenBytes(id, prev));
      prev = id;
    }
    return Buffer.concat(parts).toString('utf8');
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is outside the vocabulary 0..${this.vocabSize - 1}`);
    }
  }
}

/** isprint || isspace in the C locale. */
function isPrintableOrSpace(b: number): boolean {
  return (b >= 0x20 && b <= 0x7e) || (b >= 0x09 && b <= 0x0d);
}

interface PairEntry {
  score: number;
  left: number;
  right: number;
  leftVersion: number;
  rightVersion: number;
  merged: number;
}

/** Max-heap by score, then by smaller left index (leftmost pair wins ties). */
class PairHeap {
  private readonly items: PairEntry[] = [];

  push(entry: PairEntry): void {
    const items = this.items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): PairEntry | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < items.length && before(items[l], items[best])) best = l;
        if (r < items.length && before(items[r], items[best])) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best], items[i]];
        i = best;
      }
    }
    return top;
  }
}

function before(a: PairEntry, b: PairEntry): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}
