/**
 * PyTorch with cuDNN as a peer on a CUDA GPU (the GPU machine): runs
 * bench/peers/torch_cuda.py once with every layer the WebGPU bench times and
 * returns its figures. Where python3 has no CUDA torch (CI, llvmpipe hosts),
 * `runTorchPeer` says why instead, and the bench prints that.
 *
 * CONVBN_TORCH_PYTHON picks the interpreter (default python3);
 * CONVBN_TORCH_SCRIPT the script (default: beside this module, which is also
 * where scripts/bundle-node.mjs copies it).
 */
import type { ConvBNConfig } from '../../codegen/config.js';

export interface TorchTime { median: number; min: number; max: number; reps: number }
export interface TorchStepRow { time: TorchTime; held: number; peak: number }
export const TORCH_MODES = ['train', 'eval', 'tune', 'deploy'] as const;
export type TorchMode = (typeof TORCH_MODES)[number];

export interface TorchResults {
  device: string;
  torch: string;
  cudnn: number;
  forward: Record<string, TorchTime>;
  step: Record<string, Record<TorchMode, TorchStepRow>>;
  resnet: Record<string, Record<TorchMode, TorchStepRow>>;
}

export interface TorchJob {
  forward: { name: string; config: ConvBNConfig }[];
  step: { name: string; config: ConvBNConfig }[];
  resnet: { name: string; config: ConvBNConfig }[];
}

const env = (name: string): string | undefined => globalThis.process?.env?.[name];

/** PyTorch's figures for `job`, or the reason there are none. */
export async function runTorchPeer(job: TorchJob): Promise<{ results?: TorchResults; problem?: string }> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const python = env('CONVBN_TORCH_PYTHON') ?? 'python3';
  const script = env('CONVBN_TORCH_SCRIPT') ?? fileURLToPath(new URL('./torch_cuda.py', import.meta.url));
  const probe = await collect(spawn(python, ['-c', 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 3)']));
  if (probe.code !== 0) {
    return { problem: probe.code === 3 ? `${python}'s torch sees no CUDA device` : `${python} has no torch (${probe.stderr.trim().split('\n').pop() ?? probe.error})` };
  }
  const child = spawn(python, [script]);
  child.stdin.end(JSON.stringify(job));
  const run = await collect(child);
  if (run.code !== 0) return { problem: `${script} failed: ${run.stderr.trim().split('\n').slice(-3).join(' / ')}` };
  return { results: JSON.parse(run.stdout) as TorchResults };
}

interface Collected { code: number | null; stdout: string; stderr: string; error?: string }

function collect(child: import('node:child_process').ChildProcessWithoutNullStreams): Promise<Collected> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (e) => resolve({ code: -1, stdout, stderr, error: e.message }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
