// Types for the parts of build-browser.mjs that tests import.
import type { Server } from 'node:http';

/** Serves examples/browser at / and the case files at /vectors/, cross-origin isolated; port 0 picks a free one. */
export function servePage(port: number, vectorsDir: string): Promise<Server>;
