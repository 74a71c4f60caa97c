/**
 * WGSL literals for validated numbers only: every value that reaches shader
 * source passes through here, so nothing but a checked number is ever spliced in.
 */
export function u32Literal(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`not a u32: ${value}`);
  return `${value}u`;
}

export function i32Literal(value: number): string {
  if (!Number.isInteger(value) || value < -(2 ** 31) || value > 2 ** 31 - 1) throw new RangeError(`not an i32: ${value}`);
  return `${value}i`;
}

/** The float32 nearest to value, printed with enough digits to round-trip. */
export function f32Literal(value: number): string {
  const f = Math.fround(value);
  if (!Number.isFinite(f)) throw new RangeError(`not a finite f32: ${value}`);
  return `${f.toExponential(8)}f`;
}

export function boolLiteral(value: boolean): string {
  if (typeof value !== 'boolean') throw new RangeError(`not a bool: ${String(value)}`);
  return value ? 'true' : 'false';
}
