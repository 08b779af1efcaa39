// The sweep as JSON: the full report, stable key order, numbers as measured.
import type { SweepReport } from './sweep_result';

export function sweepToJson(report: SweepReport): string {
  return JSON.stringify(report, null, 2) + '\n';
}
