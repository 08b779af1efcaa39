// A llama2.c tokenizer with placeholder pieces, for models with random weights: a tok*.bin is
// int32 max_token_length, then per piece float32 score, int32 length and the bytes. It keeps
// llama2.c's fixed ids (<unk> 0, <s> 1, </s> 2, byte tokens <0x00>..<0xFF> at 3..258) and a " "
// piece for the dummy prefix, so any text encodes (byte by byte) and any id decodes. The
// remaining ids are " t<id>" pieces: no two pieces concatenate into another, so nothing merges.
import { LLAMA2C_BOS, LLAMA2C_EOS } from './llama2c';

/** Fixed pieces before the placeholders: <unk>, <s>, </s>, 256 byte tokens and " ". */
export const PLACEHOLDER_MIN_VOCAB = 3 + 256 + 1;

export function placeholderLlama2cTokenizer(vocabSize: number): Uint8Array {
  if (!Number.isSafeInteger(vocabSize) || vocabSize < PLACEHOLDER_MIN_VOCAB || vocabSize > 1 << 24) {
    throw new RangeError(
      `Expected vocabSize to be an integer in [${PLACEHOLDER_MIN_VOCAB}, ${1 << 24}] (llama2.c's fixed pieces need ${PLACEHOLDER_MIN_VOCAB}) but received ${vocabSize}`,
    );
  }
  const pieces: string[] = ['<unk>', '\n<s>\n', '\n</s>\n'];
  if (pieces.length !== LLAMA2C_EOS + 1 || pieces[LLAMA2C_BOS] !== '\n<s>\n') throw new Error('llama2.c special ids moved');
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  pieces.push(' ');
  for (let id = pieces.length; id < vocabSize; id++) pieces.push(` t${id}`);
  const encoded = pieces.map((p) => Buffer.from(p, 'latin1'));
  const maxLen = encoded.reduce((m, p) => Math.max(m, p.length), 1);
  const out = Buffer.alloc(4 + encoded.reduce((n, p) => n + 8 + p.length, 0));
  out.writeInt32LE(maxLen, 0);
  let off = 4;
  for (const p of encoded) {
    out.writeFloatLE(0, off);
    out.writeInt32LE(p.length, off + 4);
    p.copy(out, off + 8);
    off += 8 + p.length;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}
