/**
 * Type guards for vendor JSON: bodies are `unknown` until narrowed here, never cast.
 */

/** A JSON object (not null, not an array). */
export type JsonObject = Readonly<Record<string, unknown>>;

/** True for a plain JSON object. */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `obj[key]` when it is a string, else undefined. */
export function stringField(obj: JsonObject, key: string): string | undefined {
  const value = obj[key];
  return typeof value === 'string' ? value : undefined;
}

/** `obj[key]` when it is a finite number, else undefined. */
export function numberField(obj: JsonObject, key: string): number | undefined {
  const value = obj[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** `obj[key]` when it is a JSON object, else undefined. */
export function objectField(obj: JsonObject, key: string): JsonObject | undefined {
  const value = obj[key];
  return isJsonObject(value) ? value : undefined;
}

/** Parses JSON text, returning undefined instead of throwing. */
export function tryParseJson(text: string): unknown {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed;
  } catch {
    return undefined;
  }
}
