// The one interface every tokenizer implements (llama2.c tok*.bin, Hugging Face tokenizer.json).

export interface Tokenizer {
  /** Vocabulary size (ids are 0..vocabSize-1). */
  readonly vocabSize: number;
  /** Beginning-of-sequence id, if the tokenizer has one. */
  readonly bosId: number | undefined;
  /** End-of-sequence id, if the tokenizer has one. */
  readonly eosId: number | undefined;
  /**
   * Encode one document. `bos: true` prepends BOS the way the tokenizer's own rules do
   * (llama2.c: BOS then a dummy-prefix space; tokenizer.json: its default special tokens).
   */
  encode(text: string, opts?: { bos?: boolean }): number[];
  /** Decode ids to text (special tokens skipped). */
  decode(ids: number[]): string;
  /** Text of one token as generation prints it (llama2.c strips the space after BOS). */
  decodeToken(id: number, previousId?: number): string;
}
