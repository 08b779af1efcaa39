const v8 = require('v8'); const vm = require('vm');
v8.setFlagsFromString('--expose-gc'); const gc = vm.runInNewContext('gc');
const { openDecoder } = require('/work/main/dist/ort/session');
const D = process.argv[2];
(async () => {
  const mk = (m, e) => openDecoder(`${D}/${m}/model.onnx`, { engine: e, intraOpNumThreads: 2, sessionConfig: e === 'ort' ? { 'intra_op.allow_spinning': '0' } : { 'session.intra_op.allow_spinning': '0' } });
  const ours = await mk('w4a8-int8', 'w4a8'), nb = await mk('ort-nbits-acc4', 'ort'), fp = await mk('fp32', 'ort');
  const prompt = Array.from({ length: 128 }, (_, i) => 3 + ((i * 7919) % 30000));
  const gen = async (s) => { let r = await s.step(prompt); const t = process.hrtime.bigint(); for (let i = 0; i < 64; i++) r = await s.step([5 + i], r.cache); return Number(process.hrtime.bigint() - t) / 1e6 / 64; };
  for (let round = 0; round < 3; round++) for (const useGc of [false, true]) {
    const res = [];
    for (const [n, s] of [['fp32', fp], ['nbits', nb], ['ours', ours]]) { if (useGc) gc(); res.push(`${n} ${(await gen(s)).toFixed(2)}`); }
    console.log(`gc ${useGc}: ${res.join(', ')} ms/step`);
  }
  for (const s of [ours, nb, fp]) await s.release();
})();
