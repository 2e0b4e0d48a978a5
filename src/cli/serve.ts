/** `imagebart serve`: the editor (web page + API, src/server) on one or more model directories. */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, device, integer, parseArgs } from './args.js';
import { startServer } from '../server/app.js';
import { readManifest } from '../chain/index.js';

const MODELS = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models');

/**
 * The shipped model directories: every models/NAME holding a chain.json, the conditional chains
 * first (the page opens on the first: the models a user can steer), each group by name.
 */
export function shippedModels(): string[] {
  if (!existsSync(MODELS)) return [];
  const dirs = readdirSync(MODELS).sort().map((n) => join(MODELS, n)).filter((d) => existsSync(join(d, 'chain.json')));
  const conditional = new Set(dirs.filter((d) => {
    try {
      return readManifest(join(d, 'chain.json')).conditioning.kind !== 'none';
    } catch {
      return false; // a damaged manifest is reported when the model loads
    }
  }));
  return [...conditional, ...dirs.filter((d) => !conditional.has(d))];
}

const HELP = `imagebart serve [--model DIR …] [--port N] [--host ADDR] [options]

Serves the editor: a web page to choose a model, sample from it, and paint a mask on a picture and
watch the chain repaint it scale by scale; and its JSON/SSE API (README: "The editor").

Options:
  --model DIR        a model directory (chain.json, its VQGAN, examples/) or manifest; repeat it to serve
                     several, each under its directory's name; the page opens on the first (default:
                     every shipped model in models/, the conditional ones first)
  --port N           port (default 8080; 0 picks a free one)
  --host ADDR        address to listen on (default 127.0.0.1: this machine only)
  --workers N        model worker threads, each with its own copy of the models (default 1)
  --queue N          requests allowed to wait while every worker is busy; more get 503 (default 8)
  --max-count N      most images per request (default 16)
  --device D         cpu (default), cuda or cuda:N
  --log              log every request

Examples:
  imagebart serve
  imagebart serve --model models/mnist-class --port 8080 --workers 2
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' }, model: { type: 'string', multiple: true }, port: { type: 'string' }, host: { type: 'string' },
  workers: { type: 'string' }, queue: { type: 'string' }, 'max-count': { type: 'string' }, device: { type: 'string' }, log: { type: 'boolean' },
} as const;

export async function serveCommand(argv: string[]): Promise<number> {
  let v, port, models: string[], opts;
  try {
    v = parseArgs(argv, OPTIONS).values;
    if (v.help) {
      process.stdout.write(HELP);
      return 0;
    }
    port = integer(v.port, 'port') ?? 8080;
    if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
    models = v.model ?? shippedModels();
    if (models.length === 0) throw new UsageError(`no model to serve: give --model DIR (${MODELS} holds none)`);
    for (const m of models) if (!existsSync(m)) throw new UsageError(`--model ${m} does not exist`);
    opts = {
      models, workers: integer(v.workers, 'workers', 1), maxQueue: integer(v.queue, 'queue'), device: device(v.device),
      maxCount: integer(v['max-count'], 'max-count', 1), logger: !!v.log,
    };
  } catch (e) {
    process.stderr.write(`imagebart serve: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const server = await startServer(opts);
  const url = await server.app.listen({ port, host: v.host ?? '127.0.0.1' });
  console.log(`imagebart editor: ${url}/  (Ctrl-C stops)`);
  for (const { name, info: m } of server.pool.models) {
    console.log(`  ${name}: T=${m.T}, K=${m.K}, ${m.resolution}×${m.resolution}, conditioning: ${m.conditioning.description}`);
  }
  await new Promise<void>((done) => {
    const stop = () => void server.close().then(done);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
