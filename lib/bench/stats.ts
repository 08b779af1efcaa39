// Summary statistics of benchmark samples (a handful of numbers per variant, not tensor data).

export interface Timing {
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Timed calls behind the samples. */
  runs: number;
}

/** Median, min and max of per-call times (each sample is the mean of one timed batch). */
export function summarize(samplesMs: number[], runs: number): Timing {
  if (samplesMs.length === 0) throw new RangeError('summarize: no samples');
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const medianMs = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { medianMs, minMs: sorted[0], maxMs: sorted[sorted.length - 1], runs };
}

/** Milliseconds since an hrtime.bigint() mark. */
export function elapsedMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}
