/**
 * Contract gaps in other modules that this suite found and reported. Their
 * tests run as `test.fails`: they turn red once the gap is fixed, and the
 * entry is then removed.
 */
import { test } from 'vitest';
import type { BackendName } from '../../runtime/types.js';

/** By backend and test name, with where the fix belongs. */
export const KNOWN_GAPS: Partial<Record<BackendName, Record<string, string>>> = {};

/** `test`, or `test.fails` for a known gap of this backend (see KNOWN_GAPS). */
export function gapAware(backend: BackendName, name: string): typeof test | typeof test.fails {
  return KNOWN_GAPS[backend]?.[name] !== undefined ? test.fails : test;
}

