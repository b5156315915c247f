/** `.env` for the local starter and the operator scripts; Lambda never reads it (lib/config.ts). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';

/**
 * Reads `.env` at `dir` (values already in the environment win, as with dotenv).
 * Missing file is fine; a malformed one is reported by Node's parser as best it can.
 */
export function readDotEnv(dir: string, env: Readonly<Record<string, string | undefined>>, file = '.env'): Record<string, string | undefined> {
  let text: string;
  try {
    text = readFileSync(join(dir, file), 'utf8');
  } catch {
    return { ...env };
  }
  return { ...parseEnv(text), ...env };
}
