/**
 * The WASM backend against the conformance suite every backend shares
 * (test/conformance/suite.ts), with 2 threads.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import type { Engine } from '../runtime/types.js';
import { createWasmEngine } from '../runtime/wasm/engine.js';
import { backendConformance } from './conformance/suite.js';

let engine: Engine | undefined;

beforeAll(async () => {
  engine = await createWasmEngine({ threads: 2 });
});

afterAll(() => engine?.destroy());

describe('wasm', () => {
  backendConformance('wasm', () => engine);
});
