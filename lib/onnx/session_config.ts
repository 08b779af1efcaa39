// ONNX Runtime session options a model needs to run as exported, carried in its metadata_props so
// that every command opening the model applies them (a QDQ A16 export must keep
// qdq_matmulnbits_accuracy_level 0, or ORT silently runs it as W4A8). Only known keys with known
// values are honoured: the metadata comes from untrusted files and must not set arbitrary options.
import { create } from '@bufbuild/protobuf';
import { StringStringEntryProtoSchema, type ModelProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';

export const SESSION_CONFIG_PREFIX = 'w4a8.ort_session_config.';

/** The session config entries a model may ask for, and the values each accepts. */
const ALLOWED: Record<string, RegExp> = {
  qdq_matmulnbits_accuracy_level: /^[0-4]$/,
};

/** Records `config` in the model's metadata_props (replacing earlier entries of ours). */
export function writeSessionConfig(proto: ModelProto, config: Record<string, string>): void {
  proto.metadataProps = proto.metadataProps.filter((e) => !e.key.startsWith(SESSION_CONFIG_PREFIX));
  for (const [key, value] of Object.entries(config)) {
    if (!ALLOWED[key]?.test(value)) throw new Error(`session config ${key}=${value} is not one a model may carry`);
    proto.metadataProps.push(create(StringStringEntryProtoSchema, { key: SESSION_CONFIG_PREFIX + key, value }));
  }
}

/** The session config entries the model carries; an unknown key or value is refused (one line). */
export function readSessionConfig(proto: ModelProto, label: string): Record<string, string> {
  const config: Record<string, string> = {};
  for (const e of proto.metadataProps) {
    if (!e.key.startsWith(SESSION_CONFIG_PREFIX)) continue;
    const key = e.key.slice(SESSION_CONFIG_PREFIX.length);
    if (!Object.prototype.hasOwnProperty.call(ALLOWED, key)) {
      throw new W4A8Error(`${label} asks for ONNX Runtime session option "${key}", which w4a8 does not apply; known: ${Object.keys(ALLOWED).join(', ')}`);
    }
    if (!ALLOWED[key].test(e.value)) throw new W4A8Error(`${label} asks for session option ${key}="${e.value}", which is not a valid value`);
    config[key] = e.value;
  }
  return config;
}
