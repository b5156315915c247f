import { configuredSummary, ConfigError, enabledChannels, FUNCTION_SECRETS, functionSecrets, loadConfig, mergeSecrets, resolveFunctionEnv, SECRET_NAMES, WITHHELD, type SecretReader } from '../lib/config';

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

  it('defaults the LLM time limits, answer cap, history budget and rate limit', () => {
    const cfg = loadConfig({});
    expect(cfg.llm).toMatchObject({ streamIdleTimeoutMs: 30_000, maxTokens: 1024, timeMarginMs: 20_000, minCallTimeMs: 30_000, historyMaxBytes: 65_536 });
    expect(cfg.rateLimit).toEqual({ messages: 20, windowSec: 600 });
  });

  it('reads the LLM limits and the rate limit from the environment', () => {
    const cfg = loadConfig({
      LLM_STREAM_IDLE_TIMEOUT_MS: '5000',
      LLM_MAX_TOKENS: '256',
      LLM_TIME_MARGIN_MS: '15000',
      LLM_MIN_TIME_MS: '10000',
      HISTORY_MAX_BYTES: '32768',
      RATE_LIMIT_MESSAGES: '0',
      RATE_LIMIT_WINDOW_SEC: '60',
    });
    expect(cfg.llm).toMatchObject({ streamIdleTimeoutMs: 5000, maxTokens: 256, timeMarginMs: 15_000, minCallTimeMs: 10_000, historyMaxBytes: 32_768 });
    expect(cfg.rateLimit).toEqual({ messages: 0, windowSec: 60 });
  });

  it.each([
    [{ LLM_STREAM_IDLE_TIMEOUT_MS: '0' }, /LLM_STREAM_IDLE_TIMEOUT_MS/],
    [{ LLM_MAX_TOKENS: 'lots' }, /LLM_MAX_TOKENS/],
    [{ HISTORY_MAX_BYTES: '500000' }, /HISTORY_MAX_BYTES/],
    [{ RATE_LIMIT_MESSAGES: '-1' }, /RATE_LIMIT_MESSAGES/],
    [{ RATE_LIMIT_WINDOW_SEC: '0' }, /RATE_LIMIT_WINDOW_SEC/],
  ])('rejects an out-of-range limit %#, naming the variable', (env, pattern) => {
    expect(() => loadConfig(env)).toThrow(pattern);
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

describe('functionSecrets (what the local stack hands each function)', () => {
  const everything = {
    OPENAI_API_KEY: 'sk',
    WECHAT_TOKEN: 'tok',
    WECHAT_APP_SECRET: 'wsecret',
    WHATSAPP_VERIFY_TOKEN: 'v',
    WHATSAPP_APP_SECRET: 'a',
    WHATSAPP_ACCESS_TOKEN: 'g',
    TWILIO_AUTH_TOKEN: 't',
    ADMIN_TOKEN: 'adm',
  };

  it('gives a webhook only its own channel’s secrets, so another channel is off there as in Lambda', () => {
    // Act
    const wechat = functionSecrets('wechat', everything);
    // Assert: no WhatsApp secret, so a WhatsApp configuration without its phone number id (a
    // setting the wechat function does not get) cannot make the WeChat webhook fail to start.
    expect(Object.keys(wechat).sort()).toEqual(['WECHAT_APP_SECRET', 'WECHAT_TOKEN']);
    expect(loadConfig({ ...wechat, WECHAT_APP_ID: 'wx1' }, { usesLlm: false }).whatsapp).toBeUndefined();
  });

  it('leaves out secrets that are not set, and gives health none it could use', () => {
    expect(functionSecrets('admin', {})).toEqual({});
    expect(Object.keys(functionSecrets('worker', everything))).toEqual(expect.arrayContaining(['OPENAI_API_KEY', 'WHATSAPP_ACCESS_TOKEN', 'TWILIO_AUTH_TOKEN']));
    expect(functionSecrets('worker', everything).ADMIN_TOKEN).toBeUndefined();
  });
});

describe('secrets in a deployed stage', () => {
  const deployed = { SSM_SECRETS_PATH: '/llm-gateway/prod' };

  /** A reader over a fixed set of parameters, recording what was asked. */
  function reader(stored: Readonly<Record<string, string | undefined>>, calls: { names: readonly string[]; decrypt: boolean }[] = []): SecretReader {
    return {
      read: async (names, decrypt) => {
        calls.push({ names, decrypt });
        const found = new Map<string, string>();
        for (const name of names) {
          const value = stored[name];
          if (value !== undefined) found.set(name, decrypt ? value : 'ciphertext');
        }
        return found;
      },
    };
  }

  it('fails closed with no LLM configured, naming the settings, unless LLM_PROVIDER=dev is explicit', () => {
    expect(() => loadConfig(deployed)).toThrow(ConfigError);
    expect(() => loadConfig(deployed)).toThrow(/OPENAI_API_KEY or DIFY_API_KEY is missing under \/llm-gateway\/prod/);
    expect(loadConfig({ ...deployed, LLM_PROVIDER: 'dev' }).llm.provider).toBe('dev');
    // Locally (no SSM path) the zero-configuration echo stays.
    expect(loadConfig({}).llm.provider).toBe('dev');
    // A function that never calls the LLM does not check it.
    expect(loadConfig(deployed, { usesLlm: false }).llm.provider).toBe('dev');
  });

  it('gives each function only its secrets: read ones decrypted, others only by existence', async () => {
    const stored = { OPENAI_API_KEY: 'sk-1', WECHAT_TOKEN: 'wx-tok', WECHAT_APP_SECRET: 'wx-secret', ADMIN_TOKEN: 'adm' };
    const calls: { names: readonly string[]; decrypt: boolean }[] = [];

    const env = await resolveFunctionEnv('wechat', { ...deployed, WECHAT_APP_ID: 'wx1', OPENAI_API_KEY: 'stray-from-env' }, reader(stored, calls));
    const cfg = loadConfig(env, { usesLlm: FUNCTION_SECRETS.wechat.usesLlm });

    expect(calls).toEqual([
      { names: FUNCTION_SECRETS.wechat.read, decrypt: true },
      { names: FUNCTION_SECRETS.wechat.exists, decrypt: false },
    ]);
    expect(env.OPENAI_API_KEY).toBeUndefined(); // secrets come from SSM only
    expect(env.ADMIN_TOKEN).toBeUndefined();
    expect(env.WECHAT_APP_SECRET).toBe(WITHHELD);
    expect(cfg.wechat?.token).toBe('wx-tok');
    // Known to be set (so the AppID alone is not an error) but never held by the ingress.
    expect(cfg.wechat?.appSecret).toBe('');
  });

  it('lets the worker validate channels whose webhook secrets it does not hold', async () => {
    const stored = { DIFY_API_KEY: 'app-1', WHATSAPP_VERIFY_TOKEN: 'v', WHATSAPP_APP_SECRET: 's', WHATSAPP_ACCESS_TOKEN: 'token-1' };

    const env = await resolveFunctionEnv('worker', { ...deployed, WHATSAPP_PHONE_NUMBER_ID: '123' }, reader(stored));
    const cfg = loadConfig(env);

    expect(cfg.llm.provider).toBe('dify');
    expect(cfg.llm.dify?.apiKey).toBe('app-1');
    expect(cfg.whatsapp?.accessToken).toBe('token-1');
    expect(cfg.whatsapp?.appSecret).toBe('');
    expect(cfg.whatsapp?.verifyToken).toBe('');
  });

  it('still names a secret that is missing for a partly configured channel', async () => {
    const env = await resolveFunctionEnv('worker', { ...deployed, LLM_PROVIDER: 'dev', WHATSAPP_PHONE_NUMBER_ID: '123' }, reader({ WHATSAPP_ACCESS_TOKEN: 't' }));

    expect(() => loadConfig(env)).toThrow(/WHATSAPP_VERIFY_TOKEN, WHATSAPP_APP_SECRET are missing/);
  });

  it('turns an unreadable secret into a ConfigError naming the parameters', async () => {
    const failing: SecretReader = {
      read: async () => {
        throw Object.assign(new Error('User is not authorized to perform kms:Decrypt'), { name: 'AccessDeniedException' });
      },
    };

    const attempt = resolveFunctionEnv('admin', deployed, failing);

    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow(/Cannot read ADMIN_TOKEN from SSM Parameter Store under \/llm-gateway\/prod: AccessDeniedException/);
  });

  it('reads nothing from SSM locally: the environment and .env hold the secrets', async () => {
    const calls: { names: readonly string[]; decrypt: boolean }[] = [];
    const env = { OPENAI_API_KEY: 'sk-local' };

    expect(await resolveFunctionEnv('worker', env, reader({}, calls))).toBe(env);
    expect(calls).toEqual([]);
  });

  it('summarises what is configured from the secrets’ presence alone', () => {
    const env = mergeSecrets({ ...deployed }, new Map(), ['OPENAI_API_KEY', 'WECHAT_TOKEN', 'WHATSAPP_ACCESS_TOKEN']);

    expect(configuredSummary(env)).toEqual({ llmProvider: 'openai', channels: { wechat: true, whatsapp: true, twilio: false } });
    expect(() => configuredSummary(mergeSecrets(deployed, new Map(), ['WECHAT_TOKEN']))).toThrow(/OPENAI_API_KEY or DIFY_API_KEY/);
  });

  it('declares every secret it reads and never lets health or the webhooks read an LLM key', () => {
    for (const needs of Object.values(FUNCTION_SECRETS)) {
      for (const name of [...needs.read, ...needs.exists]) expect(SECRET_NAMES).toContain(name);
      expect(needs.read.filter((name) => needs.exists.includes(name))).toEqual([]);
    }
    expect(FUNCTION_SECRETS.health.read).toEqual([]);
    for (const fn of ['wechat', 'whatsapp', 'twilioMessaging', 'twilioVoice', 'admin'] as const) {
      expect(FUNCTION_SECRETS[fn].read.filter((name) => name === 'OPENAI_API_KEY' || name === 'DIFY_API_KEY')).toEqual([]);
    }
  });
});
