import { ConfigError, loadConfig } from '../lib/config';

describe('loadConfig', () => {
  it('defaults to the dev provider with no keys', () => {
    // Arrange / Act
    const cfg = loadConfig({});
    // Assert
    expect(cfg.llm.provider).toBe('dev');
    expect(cfg.wechat).toBeUndefined();
  });

  it('names the missing variable for a partly configured channel', () => {
    expect(() => loadConfig({ WECHAT_APP_ID: 'wx1' })).toThrow(ConfigError);
    expect(() => loadConfig({ WECHAT_APP_ID: 'wx1' })).toThrow(/WECHAT_TOKEN/);
  });
});
