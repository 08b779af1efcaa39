const { openDecoder } = require('/work/main/dist/ort/session');
(async () => {
  const model = process.argv[2];
  const s = await openDecoder(model, {});
  const prompt = Array.from({ length: 40 }, (_, i) => 3 + ((i * 7919) % 400));
  const argmax = (l) => { let b = 0; for (let i = 1; i < l.vocab; i++) if (l.data[i] > l.data[b]) b = i; return b; };
  // shared path
  let r = await s.step(prompt); const toks = [argmax(r.logits)]; let c = r.cache;
  console.log('cache class', c.constructor.name, c.buffers ? c.buffers.capacity : '');
  for (let i = 0; i < 20; i++) { r = await s.step([toks[toks.length-1]], c); c = r.cache; toks.push(argmax(r.logits)); }
  // recompute reference via logits(full)
  const full = await s.logits([...prompt, ...toks.slice(0, -1)]);
  let maxd = 0; const v = full.vocab; const last = full.data.subarray((full.seq-1)*v, full.seq*v);
  for (let i = 0; i < v; i++) maxd = Math.max(maxd, Math.abs(last[i] - r.logits.data[i]));
  console.log('tokens', toks.join(' '), 'max |cached - full| last row', maxd);
  await s.release();
})().catch(e => { console.error(e); process.exit(1); });
