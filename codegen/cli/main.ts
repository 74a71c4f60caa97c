#!/usr/bin/env node
/** The `convbn` command: dispatches to one module per subcommand. */
import { ConvBNInputError } from '../errors.js';
import { CHECK_HELP, runCheckCommand } from './check.js';
import { GEN_HELP, runGenCommand } from './gen.js';
import { RESNET18_HELP, runResnet18Command } from './resnet18.js';

const HELP = `convbn: generated WebGPU and WebAssembly kernels for Conv2d+BatchNorm blocks

Usage: convbn <command> [options]

Commands:
  gen        write specialised WGSL kernels + manifest.json for layer shapes or an ONNX model
  check      run reference case files (shared/vectors format) on a backend
  tune       time kernel variants on this device and cache the winners
  resnet18   ResNet-18's ConvBN layers: one tune-mode forward+backward each, as a table

Run "convbn <command> --help" for a command's flags and examples.`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  gen: runGenCommand,
  check: runCheckCommand,
  resnet18: runResnet18Command,
  tune: async (argv) => {
    const { runTuneCommand } = await import('./tune.js');
    return runTuneCommand(argv);
  },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(HELP);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`convbn: unknown command '${name}'\n\n${HELP}`);
    return 2;
  }
  try {
    return await command(rest);
  } catch (e) {
    const err = e as Error & { code?: string };
    // Bad input: one clear line, no stack. Anything else is a bug: keep the stack.
    if (e instanceof ConvBNInputError || err.name === 'OnnxModelError' || err.code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`convbn ${name}: ${err.message}`);
      return 2;
    }
    throw e;
  }
}

export { CHECK_HELP, GEN_HELP, RESNET18_HELP };

const invokedDirectly = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly || process.argv[1]?.endsWith('/convbn')) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
