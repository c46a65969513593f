// Guards for untrusted JSON (apiserver objects, `ip -j` output, probe answers), written once.
// They only look at shapes; what a field means is decided by the parser that uses them.

/** A JSON object: not null, not an array. */
export type JsonObject = Record<string, unknown>;

export const isRecord = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
export const isString = (v: unknown): v is string => typeof v === 'string';
export const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

/** The object, or an empty one when `v` is not an object, so a path of optional fields reads without checks. */
export const asRecord = (v: unknown): JsonObject => (isRecord(v) ? v : {});
/** The string, or undefined. */
export const asString = (v: unknown): string | undefined => (isString(v) ? v : undefined);
/** The list, or [] when `v` is not one. */
export const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
/** The strings of a list, dropping anything else; [] when `v` is not a list. */
export const asStrings = (v: unknown): string[] => (Array.isArray(v) ? v.filter(isString) : []);

/** What a parser of untrusted input returns: the typed value, or why there is none (said to the user). */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };
