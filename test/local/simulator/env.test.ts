import { enabledChannels, loadConfig } from '../../../lib/config';
import { LOCAL_TWILIO, LOCAL_WECHAT, LOCAL_WHATSAPP, simulatorEnv } from '../../../local/simulator/env';

const SIM = 'http://127.0.0.1:3100';
const GATEWAY = 'http://127.0.0.1:3000';

describe('simulatorEnv', () => {
  it('gives every unconfigured channel local settings that the gateway accepts, APIs at the simulator', () => {
    // Act
    const { add, simulated } = simulatorEnv({}, SIM, GATEWAY);
    const cfg = loadConfig(add);

    // Assert
    expect(simulated).toEqual({ wechat: true, whatsapp: true, twilio: true });
    expect(enabledChannels(cfg)).toEqual(['wechat', 'whatsapp', 'twilio']);
    expect(cfg.wechat).toMatchObject({ token: LOCAL_WECHAT.WECHAT_TOKEN, apiBase: `${SIM}/wechat-api`, replyMode: 'passive' });
    expect(cfg.wechat?.encodingAesKey).toHaveLength(43);
    expect(cfg.whatsapp).toMatchObject({ appSecret: LOCAL_WHATSAPP.WHATSAPP_APP_SECRET, graphBase: `${SIM}/graph` });
    expect(cfg.twilio).toMatchObject({ authToken: LOCAL_TWILIO.TWILIO_AUTH_TOKEN, apiBase: `${SIM}/twilio` });
    expect(cfg.publicBaseUrl).toBe(GATEWAY);
  });

  it('lets customer-service mode start with the local WeChat settings', () => {
    const { add } = simulatorEnv({ WECHAT_REPLY_MODE: 'customer_service' }, SIM, GATEWAY);

    expect(loadConfig({ WECHAT_REPLY_MODE: 'customer_service', ...add }).wechat?.replyMode).toBe('customer_service');
  });

  it('leaves a configured channel alone, even a partly configured one (the gateway then names what is missing)', () => {
    // Arrange
    const env = { WECHAT_TOKEN: 'mine', WHATSAPP_APP_SECRET: 'half-configured', TWILIO_MESSAGING_SERVICE_SID: 'MG1', PUBLIC_BASE_URL: 'https://my.example' };

    // Act
    const { add, simulated } = simulatorEnv(env, SIM, GATEWAY);

    // Assert
    expect(simulated).toEqual({ wechat: false, whatsapp: false, twilio: false });
    expect(add).toEqual({});
    expect(() => loadConfig({ ...env, ...add })).toThrow(/WhatsApp is partly configured/);
  });

  it('keeps a PUBLIC_BASE_URL that is set (Twilio then signs that URL)', () => {
    const { add } = simulatorEnv({ PUBLIC_BASE_URL: 'https://tunnel.example' }, SIM, GATEWAY);

    expect(add.PUBLIC_BASE_URL).toBeUndefined();
    expect(add.TWILIO_API_BASE).toBe(`${SIM}/twilio`);
  });

  it('treats blank values as unset, as the gateway does', () => {
    const { simulated } = simulatorEnv({ WECHAT_TOKEN: '  ', WHATSAPP_VERIFY_TOKEN: '' }, SIM, GATEWAY);

    expect(simulated).toEqual({ wechat: true, whatsapp: true, twilio: true });
  });
});
