const { prepareE2eModels } = require('/work/main/dist/pipeline/e2e_models.js');
(async () => { const r = await prepareE2eModels({ model: 'tinyllama-1.1b', tmpDir: '/work/big' }); console.log(JSON.stringify(r, null, 1)); })().catch(e => { console.error(e); process.exit(1); });
