/**
 * Shared by the register-blocked emitters: small integer helpers and the
 * rules for when a generated load or store needs a bounds check.
 *
 * A blocked kernel covers its output with tiles; the last tile along an axis
 * may hang over the edge, and taps near the border read padding. Every
 * position a tile can touch is known at codegen time (the tile starts are
 * 0, step, 2*step, ...), so a check is emitted only where some tile can
 * actually leave the tensor: interior-only layers get none.
 */
import { outputShape, type ConvBNConfig } from '../config.js';

/**
 * Invocations per workgroup of every blocked kernel (the register-blocked ones
 * index their grid in these units; the workgroup-memory GEMM is 8 x 8 of them).
 * generate.ts checks it against the @workgroup_size it reflects.
 */
export const BLOCKED_WORKGROUP_SIZE = 64;

export const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/**
 * Train's per-tile statistics (count, mean, M2 per tile and channel) go into the y buffer, free until
 * bn_apply: `tiles` partials per channel fit when 3 floats each take no more than a channel's values.
 */
export function statsPartialsFit(c: ConvBNConfig, tiles: number): boolean {
  const out = outputShape(c);
  return tiles >= 1 && 3 * tiles <= c.N * out.H * out.W;
}

/** The largest divisor of n that is <= max (channel blocks must divide the channels of a group). */
export function divisorUpTo(n: number, max: number): number {
  for (let d = Math.min(n, max); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/** A block length near `want` that splits `extent` into equal-ish tiles (56 -> 8, 28 -> 7, 12 -> 6). */
export function fitBlock(extent: number, want: number): number {
  const tiles = Math.ceil(extent / want);
  return Math.ceil(extent / tiles);
}

/**
 * True when base + t * step + offset stays in [0, extent) for every tile
 * start t in [0, tiles): then a load there needs neither clamp nor zero fill.
 */
export function alwaysInside(offset: number, step: number, tiles: number, extent: number): boolean {
  return offset >= 0 && (tiles - 1) * step + offset <= extent - 1;
}

/** Sorted distinct values. */
export function distinct(values: Iterable<number>): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

/** A WGSL i32 literal for a small codegen-time integer (negative values parenthesised). */
export function i32(v: number): string {
  if (!Number.isInteger(v)) throw new RangeError(`not an integer: ${v}`);
  return v < 0 ? `(${v}i)` : `${v}i`;
}

/** A WGSL u32 literal. */
export function u32(v: number): string {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`not a u32: ${v}`);
  return `${v}u`;
}

/** A name-safe token for a possibly negative offset: -2 -> m2. */
export function tag(v: number): string {
  return v < 0 ? `m${-v}` : `${v}`;
}

/** Reads a variant's tile parameter (generate.ts has checked that every declared one is present). */
export function param(params: Readonly<Record<string, number>> | undefined, name: string): number {
  const v = params?.[name];
  if (v === undefined) throw new Error(`missing tile parameter ${name}`);
  return v;
}

/** Thrown when a tile does not suit a config; the selector and the tuner skip such candidates. */
export class TileMismatchError extends Error {
  constructor(kind: string, detail: string) {
    super(`${kind}: ${detail}`);
    this.name = 'TileMismatchError';
  }
}

/** Indents a block of generated lines. */
export function indent(lines: readonly string[], spaces: number): string {
  const pad = ' '.repeat(spaces);
  return lines.map((l) => (l.length > 0 ? pad + l : l)).join('\n');
}
