// Bundles examples/browser/main.ts (which imports the runtime as an app would)
// into examples/browser/dist/main.js with esbuild, and puts the WASM kernels
// where the bundle looks for them (dist/build/*.wasm: runtime/wasm/pool.ts
// loads new URL('./build/...', import.meta.url), and import.meta.url is the
// bundle's URL).
//
//   node scripts/build-browser.mjs            build
//   node scripts/build-browser.mjs --serve    build, then serve the page on http://127.0.0.1:8080/
//                                             (--port N; vectors/ maps to ../shared/vectors or $CONVBN_VECTORS)
//
// Node built-ins: the runtime reaches them only through dynamic import() on
// Node-only paths (guarded at run time). Those stay external, unresolved, in
// the bundle and are listed; a static import of one is a build error, as a
// browser could not even load the bundle.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pageDir = path.join(root, 'examples', 'browser');
const outDir = path.join(pageDir, 'dist');
const WASM_FILES = ['convbn.wasm', 'convbn-st.wasm'];

/** Marks `node:*` dynamic imports external (and records them); refuses static ones. */
function nodeBuiltins(found) {
  return {
    name: 'convbn-node-builtins',
    setup(b) {
      b.onResolve({ filter: /^node:/ }, (args) => {
        const where = `${path.relative(root, args.importer)}`;
        if (args.kind === 'dynamic-import') {
          found.push({ specifier: args.path, importer: where });
          return { path: args.path, external: true };
        }
        return {
          errors: [{
            text: `${where} imports the Node built-in "${args.path}" statically (${args.kind}); ` +
              'a browser cannot load that bundle. Move the import behind a runtime check as a dynamic import(), ' +
              'or keep that module out of what the browser entry imports.',
          }],
        };
      });
    },
  };
}

/** runtime/wasm/build/*.wasm, built with asc from asconfig.json when missing. Returns false when there is no WASM backend. */
function ensureWasm() {
  if (!existsSync(path.join(root, 'runtime', 'wasm', 'engine.ts'))) return false;
  const asc = path.join(root, 'node_modules', '.bin', 'asc');
  for (const [file, target] of [['convbn.wasm', 'threads'], ['convbn-st.wasm', 'single']]) {
    if (existsSync(path.join(root, 'runtime', 'wasm', 'build', file))) continue;
    execFileSync(asc, ['--config', 'asconfig.json', '--target', target], { cwd: root, stdio: 'inherit' });
  }
  return true;
}

export async function buildBrowser({ quiet = false } = {}) {
  rmSync(outDir, { recursive: true, force: true });
  const external = [];
  const result = await build({
    entryPoints: [path.join(pageDir, 'main.ts')],
    outfile: path.join(outDir, 'main.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    metafile: true,
    logLevel: 'warning',
    plugins: [nodeBuiltins(external)],
  });
  const bundle = readFileSync(path.join(outDir, 'main.js'), 'utf8');
  // Belt and braces: nothing in the output may import a Node module statically.
  const staticNode = bundle.match(/^\s*(import\s[^;]*?from\s*|import\s*)["'](node:[^"']+|fs|path|os|url|worker_threads)["']/m);
  if (staticNode) throw new Error(`the browser bundle imports ${staticNode[2]} statically`);
  for (const f of Object.keys(result.metafile.inputs)) {
    if (/runtime[\\/]check[\\/]cases\.ts$/.test(f)) throw new Error('the browser bundle includes runtime/check/cases.ts (Node-only)');
  }
  let wasm = [];
  if (ensureWasm()) {
    mkdirSync(path.join(outDir, 'build'), { recursive: true });
    for (const f of WASM_FILES) copyFileSync(path.join(root, 'runtime', 'wasm', 'build', f), path.join(outDir, 'build', f));
    wasm = WASM_FILES.map((f) => `dist/build/${f}`);
  }
  if (!quiet) {
    const kib = (statSync(path.join(outDir, 'main.js')).size / 1024).toFixed(1);
    console.log(`examples/browser/dist/main.js: ${kib} KiB, ${Object.keys(result.metafile.inputs).length} inputs`);
    console.log(wasm.length ? `WASM kernels: ${wasm.join(', ')}` : 'WASM kernels: none (runtime/wasm/engine.ts is absent)');
    if (external.length) {
      console.log('Node built-ins left external (dynamic import() on Node-only paths, never run in a browser):');
      for (const e of external) console.log(`  ${e.specifier}  <- ${e.importer}`);
    }
  }
  return { outfile: path.join(outDir, 'main.js'), external, wasm };
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.json': 'application/json',
  '.wasm': 'application/wasm', '.map': 'application/json', '.css': 'text/css', '.png': 'image/png' };

/** A static server for the page: / is examples/browser, /vectors/ the reference cases. Cross-origin isolated (WASM threads). */
export function servePage(port, vectorsDir) {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rel = decodeURIComponent(url.pathname);
    const [base, sub] = rel.startsWith('/vectors/') ? [vectorsDir, rel.slice('/vectors/'.length)] : [pageDir, rel.slice(1) || 'index.html'];
    const file = path.resolve(base, sub);
    if (!file.startsWith(path.resolve(base) + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cache-control': 'no-store',
    });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  await buildBrowser();
  if (args.includes('--serve')) {
    const i = args.indexOf('--port');
    const port = i >= 0 ? Number(args[i + 1]) : 8080;
    const vectors = process.env.CONVBN_VECTORS ?? path.resolve(root, '..', 'shared', 'vectors');
    const server = await servePage(port, vectors);
    console.log(`Serving http://127.0.0.1:${server.address().port}/ (vectors from ${vectors}); Ctrl-C to stop.`);
  }
}
