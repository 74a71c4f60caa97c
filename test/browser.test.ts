/**
 * The runtime in a real browser: examples/browser (bundled by
 * scripts/build-browser.mjs) served from 127.0.0.1 and loaded in Debian's
 * chromium through playwright-core. The page runs one reference case in tune
 * mode; its outputs must match the case within 1e-4 on WebGPU (SwiftShader)
 * and on the WASM kernels.
 *
 * Without /usr/bin/chromium the tests skip (apt-get install chromium), except
 * under CI=true, where that is a failure. The WASM variants skip only while
 * runtime/wasm/engine.ts does not exist.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadCase, type ConvBNCase } from '../runtime/check/cases.js';
import { relativeError, TOLERANCE } from '../runtime/check/compare.js';
import type { BrowserResult } from '../examples/browser/main.js';
import { servePage } from '../scripts/build-browser.mjs';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const pageDir = path.join(repoRoot, 'examples', 'browser');
const vectorsDir = process.env.CONVBN_VECTORS ?? path.resolve(repoRoot, '../shared/vectors');
const CHROMIUM = '/usr/bin/chromium';
/** PLATFORM.md: what makes navigator.gpu give the SwiftShader adapter here. */
const LAUNCH_ARGS = [
  '--no-sandbox', '--enable-unsafe-webgpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const CASE_ID = 'case-2026-005';

const ci = process.env.CI === 'true' || process.env.CI === '1';
const haveChromium = existsSync(CHROMIUM);
const haveWasm = existsSync(path.join(repoRoot, 'runtime', 'wasm', 'engine.ts'));

/** The page's own static server (cross-origin isolated, so WASM may use threads), on an ephemeral port. */
const startServer = (): Promise<Server> => servePage(0, vectorsDir);

if (!haveChromium) {
  if (ci) {
    test('chromium is installed (required under CI=true)', () => {
      throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (Debian's package bundles SwiftShader WebGPU)`);
    });
  } else {
    test.skip(`browser tests: ${CHROMIUM} not found; install it with \`apt-get install chromium\``, () => {});
  }
} else {
  describe('examples/browser in chromium', () => {
    let server: Server;
    let browser: Browser;
    let base: string;
    let reference: ConvBNCase;
    let bundleLog: string;

    beforeAll(async () => {
      bundleLog = execFileSync(process.execPath, [path.join(repoRoot, 'scripts', 'build-browser.mjs')], { cwd: repoRoot, encoding: 'utf8' });
      reference = await loadCase(path.join(vectorsDir, `${CASE_ID}.json`));
      server = await startServer();
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
    });

    afterAll(async () => {
      await browser?.close();
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    });

    async function runPage(query: string, setup?: (page: Page) => Promise<void>): Promise<{ result: BrowserResult; page: Page; pageErrors: string[] }> {
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      if (setup) await setup(page);
      await page.goto(`${base}/index.html?${query}`);
      await page.waitForFunction(() => window.__convbnResult !== undefined, undefined, { timeout: 90_000 });
      const result = await page.evaluate(() => window.__convbnResult!);
      return { result, page, pageErrors };
    }

    /** The page's own verdict, and the same comparison redone here from what it produced. */
    function checkAgainstCase(result: BrowserResult): void {
      expect(result.error).toBeUndefined();
      expect(result.status).toBe('done');
      expect(result.caseId).toBe(CASE_ID);
      expect(result.mode).toBe('tune');
      const expected = reference.modes.tune!;
      const keys = Object.keys(expected);
      expect(keys.length).toBeGreaterThanOrEqual(5);
      expect(Object.keys(result.errors).sort()).toEqual([...keys].sort());
      for (const key of keys) {
        const out = result.outputs[key];
        expect(out, key).toHaveLength(expected[key].length);
        const err = relativeError(Float32Array.from(out), expected[key]);
        expect(err, `${key} relative error`).toBeLessThanOrEqual(1e-4);
        expect(result.errors[key], `${key} as the page reports it`).toBeCloseTo(err, 12);
      }
      expect(result.maxError).toBeLessThanOrEqual(TOLERANCE);
      expect(result.pass).toBe(true);
      for (const ms of Object.values(result.timingsMs)) expect(ms).toBeGreaterThanOrEqual(0);
      expect(Object.keys(result.timingsMs)).toHaveLength(6);
      // Tune keeps only x for backward: after backward nothing is held, and the last step held x.
      expect(result.memory?.heldForBackwardBytes).toBe(0);
      expect(result.memory?.lastStepHeldBytes).toBe(4 * reference.inputs.x.length);
    }

    test('the bundle leaves Node built-ins out (dynamic imports only) and has no runtime/check/cases.ts', () => {
      const bundle = readFileSync(path.join(pageDir, 'dist', 'main.js'), 'utf8');
      expect(bundle).not.toMatch(/^\s*import[^;]*from\s*["']node:/m);
      expect(bundle).not.toContain('loadCaseDir');
      expect(bundle).toContain('createEngine');
      expect(bundleLog).toContain('examples/browser/dist/main.js');
    });

    test('WebGPU (SwiftShader): tune forward and backward match the case within 1e-4', async () => {
      const { result, page, pageErrors } = await runPage(`backend=webgpu&case=${CASE_ID}`);
      try {
        checkAgainstCase(result);
        expect(result.backend).toBe('webgpu');
        expect(result.description).toMatch(/\S/);
        expect(pageErrors).toEqual([]);
        expect(await page.textContent('#status')).toMatch(/^PASS: tune mode on webgpu/);
        expect(await page.locator('#errors tbody tr').count()).toBe(Object.keys(reference.modes.tune!).length);
      } finally {
        await page.close();
      }
    });

    const wasmTest = haveWasm ? test : test.skip;
    const wasmNote = haveWasm ? '' : ' (skipped: runtime/wasm/engine.ts does not exist yet)';

    wasmTest(`WASM (?backend=wasm): tune forward and backward match the case within 1e-4${wasmNote}`, async () => {
      const { result, page, pageErrors } = await runPage(`backend=wasm&case=${CASE_ID}`);
      try {
        checkAgainstCase(result);
        expect(result.backend).toBe('wasm');
        expect(result.crossOriginIsolated).toBe(true);
        expect(pageErrors).toEqual([]);
        expect(await page.textContent('#status')).toMatch(/^PASS: tune mode on wasm/);
      } finally {
        await page.close();
      }
    });

    wasmTest(`auto with no WebGPU adapter falls back to WASM${wasmNote}`, async () => {
      const { result, page } = await runPage(`case=${CASE_ID}`, async (p) => {
        await p.addInitScript(() => {
          Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
        });
      });
      try {
        expect(result.requestedBackend).toBe('auto');
        checkAgainstCase(result);
        expect(result.backend).toBe('wasm');
      } finally {
        await page.close();
      }
    });
  });
}
