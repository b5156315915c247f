/**
 * `npm run secrets -- --stage prod` end to end: the tsx script as a user runs it, reading
 * `.env.<stage>` / `.env` under the environment, writing to a fake SSM over HTTP.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startFakeSsm, type FakeSsm } from '../../local/fakes/fake-ssm';

const SCRIPT = resolve(__dirname, '..', '..', 'scripts', 'secrets.ts');

function run(cwd: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Nothing from the test's own environment that could reach a real account or add secrets.
  const base: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: cwd };
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [require.resolve('tsx/cli'), SCRIPT, ...args], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', fail);
    child.once('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('npm run secrets', () => {
  let ssm: FakeSsm;
  let dir: string;

  beforeEach(async () => {
    ssm = await startFakeSsm();
    dir = mkdtempSync(join(tmpdir(), 'secrets-script-'));
  });
  afterEach(async () => {
    await ssm.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the stage file’s secrets (the environment wins) under /llm-gateway/<stage>/, printing names only', async () => {
    writeFileSync(join(dir, '.env'), 'OPENAI_API_KEY=from-dotenv\n');
    writeFileSync(join(dir, '.env.prod'), 'OPENAI_API_KEY=from-dotenv-prod\nWECHAT_TOKEN=wx-token-prod\nOPENAI_MODEL=gpt-x\n');

    const result = await run(dir, ['--stage', 'prod'], { SSM_ENDPOINT: ssm.url, AWS_REGION: 'us-east-1', TWILIO_AUTH_TOKEN: 'tw-from-shell' });

    expect(result.code).toBe(0);
    expect(result.stderr).not.toMatch(/from-dotenv|wx-token|tw-from-shell/);
    expect(ssm.parameters.get('/llm-gateway/prod/OPENAI_API_KEY')).toEqual({ value: 'from-dotenv-prod', type: 'SecureString', version: 1 });
    expect(ssm.parameters.get('/llm-gateway/prod/WECHAT_TOKEN')?.value).toBe('wx-token-prod');
    expect(ssm.parameters.get('/llm-gateway/prod/TWILIO_AUTH_TOKEN')?.value).toBe('tw-from-shell');
    expect([...ssm.parameters.keys()].sort()).toEqual(['/llm-gateway/prod/OPENAI_API_KEY', '/llm-gateway/prod/TWILIO_AUTH_TOKEN', '/llm-gateway/prod/WECHAT_TOKEN']);
    expect(result.stdout).toContain('put /llm-gateway/prod/WECHAT_TOKEN (SecureString)');
    expect(result.stdout).not.toMatch(/from-dotenv|wx-token|tw-from-shell/);
  }, 30_000);

  it('prints what it would write on --dry-run and writes nothing', async () => {
    writeFileSync(join(dir, '.env'), 'ADMIN_TOKEN=admin-secret\n');

    const result = await run(dir, ['--stage=staging', '--dry-run'], { SSM_ENDPOINT: ssm.url });

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('would put /llm-gateway/staging/ADMIN_TOKEN (SecureString)');
    expect(result.stdout).not.toContain('admin-secret');
    expect(ssm.calls).toEqual([]);
  }, 30_000);

  it('refuses to run without a valid --stage', async () => {
    const result = await run(dir, ['--stage', '../prod'], { SSM_ENDPOINT: ssm.url });

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--stage <name> is required/);
    expect(ssm.calls).toEqual([]);
  }, 30_000);

  it('fails with the SDK error, naming no value, when SSM refuses', async () => {
    writeFileSync(join(dir, '.env'), 'DIFY_API_KEY=dify-secret\n');
    ssm.denied.add('/llm-gateway/prod/DIFY_API_KEY');

    const result = await run(dir, ['--stage', 'prod'], { SSM_ENDPOINT: ssm.url });

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/AccessDenied/);
    expect(result.stderr + result.stdout).not.toContain('dify-secret');
  }, 30_000);
});
