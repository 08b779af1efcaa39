// `w4a8 bench cpu`: time our CPU W4A8 kernels against ONNX Runtime MatMulNBits / fp32 MatMul on the
// same weights (lib/bench/cpu.ts explains the method). `bench all` runs every benchmark that works
// from Node (today: the CPU one; CUDA timings come from native/bench on the GPU machine).
import * as path from 'node:path';
import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors';
import { runCommand, CommonArgs } from '../run_command';
import { runCpuBench } from '../../bench/cpu';
import { cpuBenchSection, cpuBenchTable, writeCpuSection } from '../../bench/cpu_report';
import { cpuIsaOverrideIgnored, numThreads } from '../../native/kernels';

interface BenchArgs extends CommonArgs {
  target: 'cpu' | 'all';
  shapes?: string;
  m?: string;
  rounds?: number;
  threads?: number;
  'set-mb': number;
  'batch-ms': number;
  quick: boolean;
  'write-docs': boolean;
  docs?: string;
}

const DEFAULT_SHAPES = '4096x4096,4096x11008,11008x4096';
const DEFAULT_MS = '1,8,32,128,512';
const QUICK_SHAPES = '4096x4096';
const QUICK_MS = '1,32,128';

/** "4096x4096,4096x11008" -> [{k, n}] (shapes are K x N). */
export function parseShapes(text: string): { k: number; n: number }[] {
  return text.split(',').map((part) => {
    const m = /^\s*(\d+)\s*x\s*(\d+)\s*$/i.exec(part);
    const k = m ? Number(m[1]) : NaN, n = m ? Number(m[2]) : NaN;
    if (!m || k < 1 || n < 1 || k > 65536 || n > 65536) {
      throw new UsageError(`--shapes: "${part}" is not KxN with 1 <= K, N <= 65536 (e.g. 4096x11008)`);
    }
    return { k, n };
  });
}

/** "1,8,32" -> [1, 8, 32]. */
export function parseTokenCounts(text: string): number[] {
  return text.split(',').map((part) => {
    const v = Number(part.trim());
    if (!Number.isInteger(v) || v < 1 || v > 65536) throw new UsageError(`--m: "${part}" is not a token count in 1..65536`);
    return v;
  });
}

export const benchCommand: CommandModule<CommonArgs, BenchArgs> = {
  command: 'bench <target>',
  describe: 'Benchmark the CPU W4A8 kernels against ONNX Runtime MatMulNBits and fp32 MatMul',
  builder: (y) =>
    y
      .positional('target', { type: 'string', choices: ['cpu', 'all'] as const, demandOption: true, describe: 'cpu (all = every benchmark runnable from Node)' })
      .option('shapes', { type: 'string', describe: `Weight shapes KxN, comma-separated (default ${DEFAULT_SHAPES})` })
      .option('m', { type: 'string', describe: `Token counts M, comma-separated (default ${DEFAULT_MS})` })
      .option('rounds', { type: 'number', describe: 'Interleaved timing rounds (default 7; 3 with --quick)' })
      .option('threads', { type: 'number', describe: 'Threads for our kernels and ORT intraOpNumThreads (default: all hardware threads)' })
      .option('set-mb', { type: 'number', default: 1024, describe: 'MiB of distinct weights each variant rotates through (>= 1024 measures DRAM at M=1)' })
      .option('batch-ms', { type: 'number', default: 20, describe: 'Target duration of one timed batch of calls' })
      .option('quick', { type: 'boolean', default: false, describe: `Fewer shapes and M (${QUICK_SHAPES}; M ${QUICK_MS}; 3 rounds) unless given` })
      .option('write-docs', { type: 'boolean', default: false, describe: 'Write the table into the "## CPU kernels" section of docs/BENCHMARKS.md' })
      .option('docs', { type: 'string', describe: 'The markdown file --write-docs updates (default docs/BENCHMARKS.md of this package)' }) as never,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const shapes = parseShapes(args.shapes ?? (args.quick ? QUICK_SHAPES : DEFAULT_SHAPES));
      const ms = parseTokenCounts(args.m ?? (args.quick ? QUICK_MS : DEFAULT_MS));
      const rounds = args.rounds ?? (args.quick ? 3 : 7);
      if (!Number.isInteger(rounds) || rounds < 1 || rounds > 1000) throw new UsageError(`--rounds must be an integer in 1..1000, got ${rounds}`);
      const threads = args.threads ?? numThreads();
      if (!Number.isInteger(threads) || threads < 1 || threads > 1024) throw new UsageError(`--threads must be an integer in 1..1024, got ${threads}`);
      const setMb = args['set-mb'];
      // Each variant holds its set (ONNX Runtime about twice, prepacked): ~9x the set in all.
      if (!(setMb >= 1 && setMb <= 1300)) throw new UsageError(`--set-mb must be in 1..1300 (keeps the run under ~12 GB of memory), got ${setMb}`);
      if (setMb < 1024) ctx.progress.log(`--set-mb ${setMb} < 1024: M=1 timings may come from cache, not DRAM`, 'warn');
      const batchMs = args['batch-ms'];
      if (!(batchMs > 0 && batchMs <= 10000)) throw new UsageError(`--batch-ms must be in (0, 10000], got ${batchMs}`);

      if (cpuIsaOverrideIgnored()) ctx.progress.log(`W4A8_ISA=${process.env.W4A8_ISA} is not available on this CPU; using the best ISA instead`, 'warn');
      const report = await runCpuBench({
        shapes, ms, rounds, threads, setBytes: setMb * 2 ** 20, batchMs, scalarMaxM: 8, progress: ctx.progress, cancel: ctx.cancel,
      });
      const command = `w4a8 ${process.argv.slice(2).join(' ')}`;
      if (args['write-docs']) {
        const file = path.resolve(args.docs ?? path.join(__dirname, '..', '..', '..', 'docs', 'BENCHMARKS.md'));
        writeCpuSection(file, cpuBenchSection(report, { command, date: new Date() }));
        ctx.progress.log(`wrote the CPU section of ${file}`);
      }
      if (ctx.json) {
        ctx.out(JSON.stringify({ ...report, command }));
        return;
      }
      ctx.out(`CPU: ${report.cpu}; threads ${report.threads}; default ISA ${report.isa}; rotation set ${Math.round(report.setBytes / 2 ** 20)} MiB per variant\n`);
      ctx.out(cpuBenchTable(report));
    }),
};
