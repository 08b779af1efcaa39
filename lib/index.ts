// The public library API of w4a8: re-exports only. Each stage's main functions, in the order
// data flows: onnx -> import -> tokenize -> calib -> quant -> export -> eval.
export { W4A8Error, UsageError, CancelledError } from './util/errors';

// ONNX model I/O
export { loadModel, saveModel, modelFromBytes, serializeForOrt, ortModelSource, hasExternalData, type OnnxModel, type SaveOptions } from './onnx/model';
export { findQuantizableLayers, type QuantizableLayer } from './onnx/graph';
export { summarizeModel } from './onnx/inspect';

// Importers and tokenizers
export { importLlama2c, type ImportResult } from './import/llama2c';
export { importRandomLlama, RANDOM_PRESETS, type RandomImportOptions, type RandomImportResult, type RandomLlamaShape } from './import/llama2c_random';
export { loadTokenizer, findTokenizerBeside } from './tokenize/load';
export type { Tokenizer } from './tokenize/tokenizer';

// Calibration and quantization
export { calibrationWindows } from './calib/calib_text';
export { captureStatistics } from './calib/capture';
export { resolveConfig, configLabel, type QuantConfig, type ExportFormat } from './quant/config';
export { planLayers } from './quant/plan';
export { quantizeLayers } from './quant/quantize_layers';
export { quantizeModel, type QuantizeModelOptions, type QuantizeSummary } from './pipeline/quantize';
export { attachAdapter, type AttachAdapterOptions, type AttachSummary, type AttachedLayer } from './pipeline/adapter';
export { readAdapter } from './adapter/read';
export { parseSafetensors, readSafetensors, type SafetensorsFile, type SafetensorsTensor } from './adapter/safetensors';
export type { Adapter, AdapterDelta, AdapterFactor, AdapterKind, KroneckerTerm } from './adapter/types';
export { attachAdapterToModel, matchAdapter } from './export/adapter';
export { attachAdapterWithMode, type AdapterMode } from './export/adapter_fused';

// Export formats
export { exportQuantized, QDQ_EXACT_SESSION_CONFIG, type ExportInfo } from './export/export_model';
export { checkExportSupports } from './export/compat';

// Evaluation
export { evaluatePerplexity, type PerplexityOptions, type PerplexityResult } from './eval/perplexity';
export { generateText, generateGreedy, generateStream, type GenerateOptions, type GenerateChunk, type GenerateResult, type StopReason } from './eval/generate';
export { createSampler, type SamplingOptions, type SamplingSettings, type TokenSampler } from './eval/sampler';
export { modelMaxLength, type MaxLength } from './onnx/max_length';
export { openDecoder, type DecoderSession, type KvCache } from './ort/session';
export { sweep, type SweepOptions } from './pipeline/sweep';
export { loadSweepConfigs, type SweepEntry } from './pipeline/sweep_configs';
export { sweepToMarkdown } from './pipeline/report_markdown';
export { sweepToSvg } from './pipeline/report_svg';

// Native build and kernels
export {
  GROUP_SIZES, PER_CHANNEL, PER_CHANNEL_BLOCK_SIZE, layoutGroupSize, blocksPerRow, codeBytes, scaleCount, zeroPointBytes, canonicalBytes,
  type CanonicalWeight, type WeightFormat,
} from './native/formats';
export { NATIVE_STATUS, nativeStatusOf, type NativeStatusCode } from './native/status';
export { halvesToFloat32, float32ToHalves, countNonFinite, type HalfType } from './native/tensor_codecs';
export { transposeMatrix, ropeTables } from './native/tensor_layout';
export { capabilities } from './native/capabilities';
export { tokenNll, argmaxRow } from './native/eval_ops';
export { quantizeWeight, fakeQuantActivations, layerOutputError, awqSearch, gptqQuantize } from './native/quant';
export { createCalibStats } from './native/calib_stats';
export {
  cpuIsas, cpuDefaultIsa, cpuIsaUnavailableReason, setNumThreads, numThreads, prepackWeight, prepackWeightSync, gemmW4A8, gemmW4A8Sync, gemmRunsInline, INLINE_MAX_MACS,
  gemmW4A16, gemmW4A16Sync, gemmW4A8Reference, gemmW4A16Reference, gemmDequantizedF64, dequantizeKN, kroneckerAdd, gemmW4A8Kron,
  type CpuIsa, type CpuPackedWeight, type CpuWeightFormat, type PrepackOptions, type GemmOptions, type KronFactors, type ActQuantName,
} from './native/kernels';
export { cudaStatus, cudaLinear, cudaQuantizeActivations, cudaKroneckerAdd } from './native/cuda';
