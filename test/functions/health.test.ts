/**
 * `GET /health` through the real handler, reading a deployed stage's secrets' presence from a
 * fake SSM Parameter Store over HTTP (the same reader the Lambda uses), and locally from the
 * environment.
 */
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { resolveFunctionEnv, ssmSecretReader, type Env } from '../../lib/config';
import { createHealthHandler } from '../../functions/health';
import { startFakeSsm, type FakeSsm } from '../../local/fakes/fake-ssm';

function body(res: APIGatewayProxyStructuredResultV2): unknown {
  return JSON.parse(String(res.body));
}

/** The `error` of a 503 body ('' when there is none). */
function errorOf(res: APIGatewayProxyStructuredResultV2): string {
  const parsed = body(res);
  return typeof parsed === 'object' && parsed !== null && 'error' in parsed && typeof parsed.error === 'string' ? parsed.error : '';
}

describe('GET /health', () => {
  let ssm: FakeSsm;
  let env: Env;

  beforeEach(async () => {
    ssm = await startFakeSsm();
    env = { SSM_SECRETS_PATH: '/llm-gateway/prod', SSM_ENDPOINT: ssm.url, AWS_REGION: 'us-east-1' };
  });
  afterEach(() => ssm.close());

  const deployedHealth = () => createHealthHandler(() => resolveFunctionEnv('health', env, ssmSecretReader(env)));

  it('answers 503 naming the missing LLM settings in a deployed stage with no LLM configured', async () => {
    ssm.put('/llm-gateway/prod/WECHAT_TOKEN', 'wechat-token-value');

    const res = await deployedHealth()();

    expect(res.statusCode).toBe(503);
    expect(res.headers?.['cache-control']).toBe('no-store');
    expect(body(res)).toMatchObject({ status: 'error' });
    expect(errorOf(res)).toMatch(/OPENAI_API_KEY or DIFY_API_KEY is missing under \/llm-gateway\/prod/);
  });

  it('answers 200 from the parameters’ existence alone, never decrypting one', async () => {
    ssm.put('/llm-gateway/prod/OPENAI_API_KEY', 'sk-secret-value');
    ssm.put('/llm-gateway/prod/WECHAT_TOKEN', 'wechat-token-value');

    const res = await deployedHealth()();

    expect(res.statusCode).toBe(200);
    expect(body(res)).toEqual({ status: 'ok', llmProvider: 'openai', channels: { wechat: true, whatsapp: false, twilio: false } });
    expect(ssm.calls.length).toBeGreaterThan(0);
    expect(ssm.calls.filter((call) => call.withDecryption)).toEqual([]);
    expect(String(res.body)).not.toMatch(/sk-secret-value|wechat-token-value/);
  });

  it('runs the echo model in a deployed stage only when LLM_PROVIDER=dev is explicit', async () => {
    env = { ...env, LLM_PROVIDER: 'dev' };

    const res = await deployedHealth()();

    expect(res.statusCode).toBe(200);
    expect(body(res)).toMatchObject({ llmProvider: 'dev' });
  });

  it('answers 503 naming the parameters when SSM refuses', async () => {
    ssm.denied.add('/llm-gateway/prod/OPENAI_API_KEY');

    const res = await deployedHealth()();

    expect(res.statusCode).toBe(503);
    expect(body(res)).toMatchObject({ status: 'error' });
    expect(errorOf(res)).toMatch(/Cannot read OPENAI_API_KEY, .* from SSM Parameter Store under \/llm-gateway\/prod/);
  });

  it('keeps the zero-configuration echo locally, from its own settings only', async () => {
    const local = createHealthHandler(async () => ({ WECHAT_TOKEN: 'local-dev-token' }));
    // What npm start gives health with a safe-mode WeChat account: the secrets it may see, not
    // the app id (a WeChat setting only the WeChat functions get). That is no error here.
    const perFunction = createHealthHandler(async () => ({ WECHAT_TOKEN: 't', WECHAT_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', WHATSAPP_APP_SECRET: 's' }));

    expect(body(await local())).toEqual({ status: 'ok', llmProvider: 'dev', channels: { wechat: true, whatsapp: false, twilio: false } });
    expect(body(await perFunction())).toEqual({ status: 'ok', llmProvider: 'dev', channels: { wechat: true, whatsapp: true, twilio: false } });
    expect(ssm.calls).toEqual([]);
  });
});
