/**
 * lib/secrets.ts against a fake SSM Parameter Store over HTTP on 127.0.0.1: the reader the
 * functions use at cold start, and the writer behind `npm run secrets`.
 */
import { SSMClient } from '@aws-sdk/client-ssm';
import { SECRET_NAMES } from '../lib/config';
import { createSsmClient, createSsmSecretReader, putSecrets } from '../lib/secrets';
import { startFakeSsm, type FakeSsm } from '../local/fakes/fake-ssm';

const PATH = '/llm-gateway/prod';

describe('createSsmSecretReader', () => {
  let ssm: FakeSsm;
  let client: SSMClient;

  beforeEach(async () => {
    ssm = await startFakeSsm();
    client = createSsmClient({ region: 'us-east-1', endpoint: ssm.url });
  });
  afterEach(async () => {
    client.destroy();
    await ssm.close();
  });

  it('decrypts the parameters that exist under the stage path and leaves out missing ones', async () => {
    ssm.put(`${PATH}/OPENAI_API_KEY`, 'sk-live-123');
    ssm.put(`${PATH}/TWILIO_AUTH_TOKEN`, 'twilio-secret');
    ssm.put('/llm-gateway/staging/DIFY_API_KEY', 'other-stage');
    const reader = createSsmSecretReader({ path: PATH, region: 'us-east-1', endpoint: ssm.url }, client);

    const values = await reader.read(['OPENAI_API_KEY', 'DIFY_API_KEY', 'TWILIO_AUTH_TOKEN'], true);

    expect(Object.fromEntries(values)).toEqual({ OPENAI_API_KEY: 'sk-live-123', TWILIO_AUTH_TOKEN: 'twilio-secret' });
    expect(ssm.calls).toEqual([
      { operation: 'GetParameters', names: [`${PATH}/OPENAI_API_KEY`, `${PATH}/DIFY_API_KEY`, `${PATH}/TWILIO_AUTH_TOKEN`], withDecryption: true },
    ]);
  });

  it('checks existence without decryption, never seeing a value', async () => {
    ssm.put(`${PATH}/WECHAT_TOKEN`, 'wechat-token-value');
    const reader = createSsmSecretReader({ path: PATH, region: 'us-east-1', endpoint: ssm.url }, client);

    const existing = await reader.read(['WECHAT_TOKEN', 'WHATSAPP_VERIFY_TOKEN'], false);

    expect([...existing.keys()]).toEqual(['WECHAT_TOKEN']);
    expect(existing.get('WECHAT_TOKEN')).not.toBe('wechat-token-value');
    expect(ssm.calls[0]?.withDecryption).toBe(false);
  });

  it('reads more than ten names in batches of ten (the GetParameters limit)', async () => {
    for (const name of SECRET_NAMES) ssm.put(`${PATH}/${name}`, `value-of-${name}`);
    const reader = createSsmSecretReader({ path: PATH, region: 'us-east-1', endpoint: ssm.url }, client);

    const values = await reader.read(SECRET_NAMES, true);

    expect(values.size).toBe(SECRET_NAMES.length);
    expect(ssm.calls.map((call) => call.names.length).sort()).toEqual([1, 10]);
  });

  it('rejects when access is denied instead of treating the secret as unset', async () => {
    ssm.put(`${PATH}/OPENAI_API_KEY`, 'sk-live-123');
    ssm.denied.add(`${PATH}/OPENAI_API_KEY`);
    const reader = createSsmSecretReader({ path: PATH, region: 'us-east-1', endpoint: ssm.url }, client);

    await expect(reader.read(['OPENAI_API_KEY'], true)).rejects.toThrow(/AccessDenied|not authorized/);
  });
});

describe('putSecrets', () => {
  let ssm: FakeSsm;
  let client: SSMClient;

  beforeEach(async () => {
    ssm = await startFakeSsm();
    client = createSsmClient({ region: 'us-east-1', endpoint: ssm.url });
  });
  afterEach(async () => {
    client.destroy();
    await ssm.close();
  });

  it('writes each set secret as a SecureString, overwriting, and prints names only', async () => {
    ssm.put(`${PATH}/OPENAI_API_KEY`, 'old-key');
    const lines: string[] = [];

    const result = await putSecrets(client, {
      path: PATH,
      env: { OPENAI_API_KEY: ' new-key ', WECHAT_TOKEN: 'wx-token', OPENAI_MODEL: 'gpt-x' },
      names: SECRET_NAMES,
      dryRun: false,
      print: (line) => lines.push(line),
    });

    expect(result.written).toEqual(['OPENAI_API_KEY', 'WECHAT_TOKEN']);
    expect(ssm.parameters.get(`${PATH}/OPENAI_API_KEY`)).toEqual({ value: 'new-key', type: 'SecureString', version: 2 });
    expect(ssm.parameters.get(`${PATH}/WECHAT_TOKEN`)).toEqual({ value: 'wx-token', type: 'SecureString', version: 1 });
    expect(ssm.parameters.has(`${PATH}/OPENAI_MODEL`)).toBe(false);
    expect(lines).toContain(`put ${PATH}/OPENAI_API_KEY (SecureString)`);
    expect(lines.join('\n')).not.toMatch(/new-key|wx-token/);
  });

  it('writes nothing on a dry run', async () => {
    const lines: string[] = [];

    const result = await putSecrets(client, { path: PATH, env: { ADMIN_TOKEN: 'adm' }, names: SECRET_NAMES, dryRun: true, print: (line) => lines.push(line) });

    expect(result.written).toEqual(['ADMIN_TOKEN']);
    expect(lines).toContain(`would put ${PATH}/ADMIN_TOKEN (SecureString)`);
    expect(ssm.calls).toEqual([]);
  });

  it('refuses a value over the 4 KB parameter limit before writing anything', async () => {
    await expect(
      putSecrets(client, { path: PATH, env: { ADMIN_TOKEN: 'adm', OPENAI_API_KEY: 'x'.repeat(4097) }, names: SECRET_NAMES, dryRun: false, print: () => undefined }),
    ).rejects.toThrow(/OPENAI_API_KEY is longer than 4096 bytes/);
    expect(ssm.calls).toEqual([]);
  });
});
