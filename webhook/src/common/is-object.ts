/** A JSON object (not null, not an array): what a field of parsed input must be before it is read by key. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
