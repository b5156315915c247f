import { join } from 'node:path';
test('f: getBuiltinModule', async () => {
  const mod = process.getBuiltinModule('node:module');
  const req = mod.createRequire(__filename);
  const t0 = Date.now();
  const m = req(join(process.cwd(), 'node_modules/fauxqs/dist/app.js'));
  console.log('f ok', Object.keys(m), Date.now() - t0);
  const app = m.buildApp({ logger: false });
  const addr = await app.listen({ port: 0, host: '127.0.0.1' });
  console.log(addr);
  await app.close();
});
