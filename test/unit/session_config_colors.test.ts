// Session options carried in a model's metadata_props (lib/onnx/session_config.ts), and the stderr
// colour decision (lib/util/colors.ts).
import { create } from '@bufbuild/protobuf';
import { ModelProtoSchema, StringStringEntryProtoSchema } from 'onnx-buf';
import { readSessionConfig, SESSION_CONFIG_PREFIX, writeSessionConfig } from '../../lib/onnx/session_config';
import { stderrWantsColor } from '../../lib/util/colors';
import { W4A8Error } from '../../lib/util/errors';

describe('session config in metadata_props', () => {
  it('round-trips a known entry and replaces earlier ones', () => {
    const proto = create(ModelProtoSchema, {});
    writeSessionConfig(proto, { qdq_matmulnbits_accuracy_level: '4' });
    writeSessionConfig(proto, { qdq_matmulnbits_accuracy_level: '0' });
    expect(proto.metadataProps.map((p) => [p.key, p.value])).toEqual([[`${SESSION_CONFIG_PREFIX}qdq_matmulnbits_accuracy_level`, '0']]);
    expect(readSessionConfig(proto, 'm.onnx')).toEqual({ qdq_matmulnbits_accuracy_level: '0' });
  });

  it('ignores other metadata, refuses unknown keys and bad values from a file (one line naming them)', () => {
    const proto = create(ModelProtoSchema, {});
    proto.metadataProps.push(create(StringStringEntryProtoSchema, { key: 'max_sequence_length', value: '512' }));
    expect(readSessionConfig(proto, 'm.onnx')).toEqual({});
    proto.metadataProps.push(create(StringStringEntryProtoSchema, { key: `${SESSION_CONFIG_PREFIX}session.use_env_allocators`, value: '1' }));
    expect(() => readSessionConfig(proto, 'm.onnx')).toThrow(W4A8Error);
    expect(() => readSessionConfig(proto, 'm.onnx')).toThrow(/m\.onnx asks for ONNX Runtime session option "session\.use_env_allocators", which w4a8 does not apply/);
    proto.metadataProps.pop();
    proto.metadataProps.push(create(StringStringEntryProtoSchema, { key: `${SESSION_CONFIG_PREFIX}qdq_matmulnbits_accuracy_level`, value: '7' }));
    expect(() => readSessionConfig(proto, 'm.onnx')).toThrow(/qdq_matmulnbits_accuracy_level="7", which is not a valid value/);
    expect(() => writeSessionConfig(proto, { 'session.intra_op.allow_spinning': '0' })).toThrow(/not one a model may carry/);
  });
});

describe('stderr colour', () => {
  it.each([
    [{}, true, true],
    [{}, false, false],
    [{ CI: '1' }, false, false],
    [{ NO_COLOR: '' }, true, false],
    [{ NO_COLOR: '1', FORCE_COLOR: '1' }, true, false],
    [{ FORCE_COLOR: '1' }, false, true],
    [{ FORCE_COLOR: '0' }, false, false],
    [{ TERM: 'dumb' }, true, false],
  ])('env %j, stderr a terminal: %s -> colour %s', (env, tty, want) => {
    expect(stderrWantsColor(env as NodeJS.ProcessEnv, tty)).toBe(want);
  });
});
