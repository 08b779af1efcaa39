// A session over one part of a decoder (a block, for sequential calibration): the decoder
// inputs it reads (input_ids, positions, empty past key/values) are fed as a decoder session
// feeds them; every other input is a value an earlier part computed, fed by the caller.
import * as ort from 'onnxruntime-node';
import { W4A8Error } from '../util/errors';
import type { DataType } from '../onnx/dtype';
import { ONNX_ELEMENT_TYPES } from '../native/ort_runtime';
import { decoderFeeds, firstLine, intraOpThreads, planDecoderInput, type InputPlan } from './session';

/** The ONNX element type of an ORT tensor type (a carried value becomes a typed input of the next part). */
export function dataTypeOfOrt(type: string): DataType | undefined {
  return (ONNX_ELEMENT_TYPES as Record<string, number>)[type] as DataType | undefined;
}

/** A value one part computed and a later part reads (an ORT tensor, kept on the CPU). */
export type StageValue = ort.Tensor;

/** A stage value as plain data (what the resume state stores), and back. */
export interface PlainStageValue {
  type: ort.Tensor.Type;
  dims: number[];
  data: ort.Tensor.DataType;
}
export function plainStageValue(t: StageValue): PlainStageValue {
  return { type: t.type, dims: [...t.dims], data: t.data };
}
export function stageValueOf(p: PlainStageValue): StageValue {
  return new ort.Tensor(p.type, p.data as never, p.dims);
}

export interface StageSession {
  /** Inputs the caller feeds (values computed by earlier parts). */
  readonly carriedInputs: readonly string[];
  /** One forward pass over `ids` (batch 1), the carried inputs given, returning `fetches`. */
  run(ids: number[], carried: Readonly<Record<string, ort.Tensor>>, fetches: string[]): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

export interface OpenStageOptions {
  /** The folder the part's external-data locations are relative to (ORT maps the side files itself). */
  externalDataFolder?: string;
  sessionConfig?: Record<string, string>;
  label: string;
}

/** Opens serialized part bytes on the CPU execution provider. */
export async function openStage(bytes: Uint8Array, opts: OpenStageOptions): Promise<StageSession> {
  if (process.env.W4A8_DEBUG !== '1') ort.env.logLevel = 'fatal';
  const session = { ...opts.sessionConfig };
  if (opts.externalDataFolder !== undefined) session.model_external_initializers_file_folder_path = opts.externalDataFolder;
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: intraOpThreads(),
    logSeverityLevel: process.env.W4A8_DEBUG === '1' ? 2 : 4,
    ...(Object.keys(session).length > 0 ? { extra: { session } } : {}),
  };
  let s: ort.InferenceSession;
  try {
    s = await ort.InferenceSession.create(bytes, options);
  } catch (err) {
    throw new W4A8Error(`cannot load ${opts.label}: ${firstLine(err)}`);
  }
  const plans: InputPlan[] = [];
  const carriedInputs: string[] = [];
  try {
    for (const meta of s.inputMetadata) {
      const plan = planDecoderInput(opts.label, meta);
      if (plan) plans.push(plan);
      else carriedInputs.push(meta.name);
    }
  } catch (err) {
    await s.release();
    throw err;
  }
  return {
    carriedInputs,
    async run(ids, carried, fetches) {
      const feeds = decoderFeeds(plans, ids);
      for (const name of carriedInputs) {
        const t = carried[name];
        if (!t) throw new W4A8Error(`${opts.label}: no value for its input "${name}"`);
        feeds[name] = t;
      }
      try {
        return await s.run(feeds, fetches);
      } catch (err) {
        throw new W4A8Error(`ONNX Runtime failed running ${opts.label} on ${ids.length} tokens: ${firstLine(err)}`);
      }
    },
    release: () => s.release(),
  };
}
