import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { functionUrls, memorySizes } from '../../bench/cost';

const yml = readFileSync(join(__dirname, '..', '..', 'serverless.yml'), 'utf8');

describe('the cost bench reads serverless.yml', () => {
  it('prices the webhooks the vendors call through function URLs as such, and no other', () => {
    // Arrange / Act
    const urls = functionUrls(yml);

    // Assert: every vendor is pointed at a function URL.
    expect([...urls].sort()).toEqual(['twilioMessaging', 'twilioVoice', 'wechat', 'whatsapp']);
  });

  it('takes each function’s own memorySize, else the provider’s', () => {
    // Arrange
    const small = ['provider:', '  name: aws', '  memorySize: 512', 'functions:', '  a:', '    handler: a.handler', '    memorySize: 128', '    url: true', '  b:', '    handler: b.handler', '    url: false', 'resources:', '  x: 1', ''].join('\n');

    // Act / Assert
    expect(memorySizes(small)).toEqual({ a: 128, b: 512 });
    expect([...functionUrls(small)]).toEqual(['a']);
    expect(memorySizes(yml).worker).toBe(192);
  });
});
