/**
 * The known-answer vectors kept with the tests: test/fixtures/vectors/*.json. Each file
 * records where its values come from (`source`, `source_url`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

const VECTORS_DIR = path.resolve(__dirname, '..', 'fixtures', 'vectors');

/** Reads and parses one vector file, e.g. `wechat.json`. */
export function readVectors(file: string): unknown {
  const parsed: unknown = JSON.parse(readFileSync(path.join(VECTORS_DIR, file), 'utf8'));
  return parsed;
}

/** Reads `obj[key]` as a string, failing the test when the vector file has another shape. */
export function vectorField(obj: unknown, key: string): string {
  if (typeof obj !== 'object' || obj === null || !(key in obj)) throw new Error(`vector lacks ${key}`);
  const value: unknown = Reflect.get(obj, key);
  if (typeof value !== 'string') throw new Error(`vector ${key} is not a string`);
  return value;
}

/** Reads `obj[key]`, failing the test when the vector file lacks it. */
export function vectorSection(obj: unknown, key: string): unknown {
  if (typeof obj !== 'object' || obj === null || !(key in obj)) throw new Error(`vector lacks ${key}`);
  return Reflect.get(obj, key);
}
