// Bundles the WebGPU benchmark and the convbn CLI for a machine that has Node
// and nothing else (the GPU machine: no registry to npm-install from). Output:
//
//   <out>/bench.mjs      bench/run.ts (run it with --only webgpu: the WASM section's peers are not bundled)
//   <out>/convbn.mjs     the CLI (gen, check, tune, ...)
//   <out>/torch_cuda.py  the PyTorch peer the bench runs beside ours (bench/peers/torch.ts)
//   <out>/node_modules/webgpu/   Dawn for Node (index.js, package.json, the linux-x64 dawn.node), loaded at run time
//   <out>/build/         the WASM kernels (runtime/wasm/build, from `npm run build:wasm`): the CLI's
//                        --backend wasm and auto's fallback load them beside the bundle
//
//   node scripts/bundle-node.mjs [out]     (default .dev/bundle)
//
// Node built-ins stay external; so do the WASM peers and esbuild, which the
// bundled paths never reach (bench/peers/tfjs-webgpu.ts takes the bundled
// gradient registration when CONVBN_NODE_BUNDLE is defined).
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.argv[2] ?? path.join(root, '.dev', 'bundle'));
const NOT_BUNDLED = ['webgpu', 'esbuild', 'onnxruntime-web', '@tensorflow/tfjs-backend-wasm', 'playwright-core'];

const wasmBuild = path.join(root, 'runtime', 'wasm', 'build');
const WASM_FILES = ['convbn.wasm', 'convbn-st.wasm'];
for (const f of WASM_FILES) {
  if (!existsSync(path.join(wasmBuild, f))) throw new Error(`bundle-node: ${path.join(wasmBuild, f)} is missing; run \`npm run build:wasm\` first`);
}

rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: { bench: path.join(root, 'bench', 'run.ts'), convbn: path.join(root, 'codegen', 'cli', 'main.ts') },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: NOT_BUNDLED,
  define: { CONVBN_NODE_BUNDLE: 'true' },
  // CommonJS inside an ES module bundle (tfjs's Node builds) needs require().
  banner: { js: "import { createRequire as __convbnRequire } from 'node:module'; const require = __convbnRequire(import.meta.url);" },
  logLevel: 'warning',
});
copyFileSync(path.join(root, 'bench', 'peers', 'torch_cuda.py'), path.join(out, 'torch_cuda.py'));
const dawn = path.join(root, 'node_modules', 'webgpu');
const dawnOut = path.join(out, 'node_modules', 'webgpu');
mkdirSync(path.join(dawnOut, 'dist', 'linux-x64'), { recursive: true });
for (const f of ['package.json', 'index.js', path.join('dist', 'linux-x64', 'dawn.node')]) copyFileSync(path.join(dawn, f), path.join(dawnOut, f));
mkdirSync(path.join(out, 'build'), { recursive: true });
for (const f of WASM_FILES) copyFileSync(path.join(wasmBuild, f), path.join(out, 'build', f));
console.log(`bundled into ${path.relative(root, out) || out}`);
