import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readDotEnv } from '../../local/dotenv';

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
