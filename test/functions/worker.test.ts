/**
 * The worker's Lambda entry fails closed: in a deployed stage (SSM_SECRETS_PATH set by
 * serverless.yml) with no LLM key in SSM Parameter Store (a fake over HTTP here), it refuses
 * every batch with an error naming the setting, instead of answering users with the echo.
 */
import type { SQSEvent } from 'aws-lambda';
import { startFakeSsm, type FakeSsm } from '../../local/fakes/fake-ssm';

const event: SQSEvent = { Records: [] };

describe('functions/worker handler in a deployed stage', () => {
  let ssm: FakeSsm;

  beforeEach(async () => {
    ssm = await startFakeSsm();
    jest.resetModules();
    process.env.SSM_SECRETS_PATH = '/llm-gateway/prod';
    process.env.SSM_ENDPOINT = ssm.url;
    process.env.AWS_REGION = 'us-east-1';
    delete process.env.LLM_PROVIDER;
    delete process.env.OPENAI_API_KEY;
    delete process.env.DIFY_API_KEY;
  });
  afterEach(async () => {
    delete process.env.SSM_SECRETS_PATH;
    delete process.env.SSM_ENDPOINT;
    await ssm.close();
  });

  it('refuses at start-up with no LLM configured, naming the setting, and retries the start next time', async () => {
    const { handler } = await import('../../functions/worker');

    await expect(handler(event)).rejects.toThrow(/OPENAI_API_KEY or DIFY_API_KEY is missing under \/llm-gateway\/prod/);
    const firstCalls = ssm.calls.length;
    expect(firstCalls).toBeGreaterThan(0);
    // The LLM key is put afterwards: the next invocation starts again and succeeds.
    ssm.put('/llm-gateway/prod/OPENAI_API_KEY', 'sk-test');
    process.env.TABLE_NAME = 'llm-gateway-prod';
    process.env.QUEUE_URL = 'http://127.0.0.1:1/000000000000/jobs.fifo';
    await expect(handler(event)).resolves.toEqual({ batchItemFailures: [] });
    expect(ssm.calls.length).toBeGreaterThan(firstCalls);
    expect(ssm.calls.filter((call) => call.withDecryption).flatMap((call) => call.names)).toContain('/llm-gateway/prod/OPENAI_API_KEY');
  });

  it('refuses when the LLM key cannot be decrypted, naming the parameter', async () => {
    ssm.put('/llm-gateway/prod/OPENAI_API_KEY', 'sk-test');
    ssm.denied.add('/llm-gateway/prod/OPENAI_API_KEY');
    const { handler } = await import('../../functions/worker');

    await expect(handler(event)).rejects.toThrow(/Cannot read OPENAI_API_KEY.* from SSM Parameter Store under \/llm-gateway\/prod/);
  });
});
