import { ConfigError, enabledChannels, loadConfig, readDotEnv } from '../lib/config';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const whatsapp = {
  WHATSAPP_VERIFY_TOKEN: 'v',
  WHATSAPP_APP_SECRET: 's',
  WHATSAPP_ACCESS_TOKEN: 't',
  WHATSAPP_PHONE_NUMBER_ID: '1234567890',
};
const twilio = {
  TWILIO_ACCOUNT_SID: `AC${'a'.repeat(32)}`,
  TWILIO_AUTH_TOKEN: 'tok',
  TWILIO_FROM: '+15550001111',
  PUBLIC_BASE_URL: 'https://example.execute-api.us-east-1.amazonaws.com',
};

describe('loadConfig', () => {
  it('defaults to the dev provider and no channels with an empty environment', () => {
    const cfg = loadConfig({});
    expect(cfg.llm.provider).toBe('dev');
    expect(enabledChannels(cfg)).toEqual([]);
    expect(cfg.llm.historyTurns).toBe(10);
  });

  it('picks openai when its key is set, else dify', () => {
    expect(loadConfig({ OPENAI_API_KEY: 'sk', DIFY_API_KEY: 'app' }).llm.provider).toBe('openai');
    expect(loadConfig({ DIFY_API_KEY: 'app' }).llm.provider).toBe('dify');
    expect(loadConfig({ DIFY_API_KEY: 'app' }).llm.dify?.baseUrl).toBe('https://api.dify.ai/v1');
  });

  it('honours an explicit provider and names a missing key', () => {
    expect(loadConfig({ LLM_PROVIDER: 'dev', OPENAI_API_KEY: 'sk' }).llm.provider).toBe('dev');
    expect(() => loadConfig({ LLM_PROVIDER: 'openai' })).toThrow(/OPENAI_API_KEY/);
    expect(() => loadConfig({ LLM_PROVIDER: 'claude' })).toThrow(/LLM_PROVIDER/);
  });

  it('enables each channel whose secrets are complete', () => {
    const cfg = loadConfig({ WECHAT_TOKEN: 't', ...whatsapp, ...twilio });
    expect(enabledChannels(cfg)).toEqual(['wechat', 'whatsapp', 'twilio']);
    expect(cfg.whatsapp?.graphVersion).toMatch(/^v\d+\.\d$/);
    expect(cfg.wechat?.replyMode).toBe('passive');
  });

  it.each([
    [{ WECHAT_APP_ID: 'wx1' }, /WECHAT_TOKEN/],
    [{ ...whatsapp, WHATSAPP_APP_SECRET: '' }, /WHATSAPP_APP_SECRET/],
    [{ ...whatsapp, WHATSAPP_PHONE_NUMBER_ID: 'abc' }, /WHATSAPP_PHONE_NUMBER_ID/],
    [{ TWILIO_AUTH_TOKEN: 'x' }, /TWILIO_ACCOUNT_SID/],
    [{ ...twilio, TWILIO_ACCOUNT_SID: 'AC12' }, /TWILIO_ACCOUNT_SID/],
    [{ ...twilio, PUBLIC_BASE_URL: '' }, /PUBLIC_BASE_URL/],
    [{ WECHAT_TOKEN: 't', WECHAT_ENCODING_AES_KEY: 'short' }, /WECHAT_ENCODING_AES_KEY/],
    [{ WECHAT_TOKEN: 't', WECHAT_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' }, /WECHAT_APP_ID/],
    [{ WECHAT_TOKEN: 't', WECHAT_REPLY_MODE: 'customer_service' }, /WECHAT_APP_ID/],
    [{ WECHAT_TOKEN: 't', WECHAT_MENU_PROMPTS: '[1]' }, /WECHAT_MENU_PROMPTS/],
    [{ HISTORY_TURNS: 'ten' }, /HISTORY_TURNS/],
    [{ WECHAT_TOKEN: 't', WECHAT_APP_ID: 'wx1' }, /WECHAT_APP_SECRET/],
    [{ WECHAT_TOKEN: 't', WECHAT_ENCODING_AES_KEY_PREVIOUS: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' }, /WECHAT_ENCODING_AES_KEY /],
    [{ OPENAI_API_KEY: 'sk', OPENAI_BASE_URL: 'ftp://x' }, /OPENAI_BASE_URL/],
  ])('rejects partial or malformed settings %#, naming the variable', (env, pattern) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(pattern);
  });

  it('parses ALLOWED_USERS as a trimmed set with phone numbers in one spelling', () => {
    expect([...loadConfig({ ALLOWED_USERS: ' +1 555 0100 , oUser ,, whatsapp:+15550199' }).allowedUsers]).toEqual(['+15550100', 'oUser', '+15550199']);
  });

  it('defaults the transcription model when the variable is empty, and disables it with none', () => {
    expect(loadConfig({ OPENAI_API_KEY: 'sk', OPENAI_TRANSCRIPTION_MODEL: '' }).llm.openai?.transcriptionModel).toBe('whisper-1');
    expect(loadConfig({ OPENAI_API_KEY: 'sk', OPENAI_TRANSCRIPTION_MODEL: 'none' }).llm.openai?.transcriptionModel).toBe('');
  });

  it('holds a failing job 60 s by default, FAILED_JOB_HOLD_SEC when set, and refuses nonsense', () => {
    expect(loadConfig({}).failedJobHoldSec).toBe(60);
    expect(loadConfig({ FAILED_JOB_HOLD_SEC: '5' }).failedJobHoldSec).toBe(5);
    expect(() => loadConfig({ FAILED_JOB_HOLD_SEC: '0' })).toThrow(/FAILED_JOB_HOLD_SEC/);
    expect(() => loadConfig({ FAILED_JOB_HOLD_SEC: 'soon' })).toThrow(/FAILED_JOB_HOLD_SEC/);
  });

  it('parses menu prompts', () => {
    const cfg = loadConfig({ WECHAT_TOKEN: 't', WECHAT_MENU_PROMPTS: '{"V1001_NEWS":"What is new today?"}' });
    expect(cfg.wechat?.menuPrompts).toEqual({ V1001_NEWS: 'What is new today?' });
  });
});

describe('readDotEnv', () => {
  it('reads .env but lets the real environment win', () => {
    const dir = mkdtempSync(join(tmpdir(), 'env-'));
    writeFileSync(join(dir, '.env'), 'WECHAT_TOKEN=fromfile\nOPENAI_MODEL="gpt-x"\n');
    const env = readDotEnv(dir, { WECHAT_TOKEN: 'fromenv' });
    expect(env.WECHAT_TOKEN).toBe('fromenv');
    expect(env.OPENAI_MODEL).toBe('gpt-x');
  });

  it('is fine without a .env file', () => {
    expect(readDotEnv(mkdtempSync(join(tmpdir(), 'env-')), { A: '1' })).toEqual({ A: '1' });
  });
});
