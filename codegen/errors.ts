/**
 * An input the library refuses before any GPU or WASM work starts.
 * `field` names what was wrong so callers (and the CLI) can point at it.
 */
export class ConvBNInputError extends Error {
  readonly field: string;
  readonly value: unknown;
  readonly allowed: string;

  constructor(field: string, value: unknown, allowed: string) {
    super(`${field} = ${formatValue(value)} is invalid: ${allowed}`);
    this.name = 'ConvBNInputError';
    this.field = field;
    this.value = value;
    this.allowed = allowed;
  }
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(formatValue).join(', ')}]`;
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) {
    return String(value);
  }
  try {
    return JSON.stringify(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
