/** Writes runtime/wasm/assembly/slots.ts: the parameter-block layouts of runtime/wasm/layout.ts, for the kernels. */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assemblySlotsSource } from '../runtime/wasm/layout.js';

writeFileSync(fileURLToPath(new URL('../runtime/wasm/assembly/slots.ts', import.meta.url)), assemblySlotsSource());
