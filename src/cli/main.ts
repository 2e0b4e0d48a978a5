#!/usr/bin/env node
/** The `imagebart` command line. Each subcommand lives in its own module and is loaded on demand. */
import { parseArgs } from 'node:util';

const HELP = `imagebart — ImageBART (Esser et al., NeurIPS 2021) in TypeScript on libtorch

Usage: imagebart <command> [options]

Commands:
  info                 libtorch build, devices, BLAS and thread split
  vqgan <sub>          first stage: train | eval | encode | decode | shrink
  sample               sample images from a trained chain (PNG grid + JSON sidecar)
  edit                 repaint a masked part of a picture with a trained chain
  chain <sub>          the reverse chain: train (one scale or --all) | nll
  eval <sub>           sample quality: classifier | reference | samples | completion
  convert IN OUT       official PyTorch Lightning .ckpt → safetensors (safe: no pickle code runs)
  import SAMPLING.yaml an official release (sampling YAML, per-scale YAMLs and ckpts) → a model directory; --inspect describes it
  serve                the editor: a web page to sample and to paint masks for the chain to repaint
  demo                 the shipped MNIST model samples digits and completes a half-erased one
  help                 this text

Environment:
  IMAGEBART_THREADS        ATen (OpenMP) threads, default: all cores
  IMAGEBART_BLAS_THREADS   BLAS threads, default: all cores
  LIBTORCH                 build against this libtorch directory (e.g. a CUDA build)
  IMAGEBART_CHECK_DEVICES  1: every operator checks that its tensor inputs share a device (debugging)

Run 'imagebart <command> --help' for a command's options.`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  info: async () => async (argv) => {
    const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } } });
    if (values.help) {
      console.log('imagebart info: prints the libtorch build, devices, BLAS library and thread split.');
      return 0;
    }
    const T = await import('../torch/index.js');
    const th = T.getThreads();
    console.log(`devices: cpu${T.cudaAvailable() ? `, cuda ×${T.cudaDeviceCount()}` : ''}`);
    console.log(`threads: ATen ${th.intraOp}, BLAS ${th.blas} (${th.blasLibrary})`);
    console.log(T.buildInfo());
    return 0;
  },
  vqgan: async () => (await import('./vqgan.js')).vqganCommand,
  sample: async () => (await import('./sample.js')).sampleCommand,
  edit: async () => (await import('./sample.js')).editCommand,
  chain: async () => (await import('./chain.js')).chainCommand,
  convert: async () => (await import('./convert.js')).convertCommand,
  import: async () => (await import('./import.js')).importCommand,
  demo: async () => (await import('./demo.js')).demoCommand,
  eval: async () => (await import('./eval.js')).evalCommand,
  serve: async () => (await import('./serve.js')).serveCommand,

};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(HELP);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    console.error(`imagebart: unknown command '${name}'\n\n${HELP}`);
    return 2;
  }
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`imagebart: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
