/** `imagebart serve`: the editor (web page + API, src/server) on a model directory. */
import { parseArgs } from 'node:util';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, integer } from './args.js';
import { startServer } from '../server/app.js';

const SHIPPED = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models', 'mnist');

const HELP = `imagebart serve [--model DIR] [--port N] [--host ADDR] [options]

Serves the editor: a web page to sample from the model and to paint a mask on a picture and watch the
chain repaint it scale by scale, and its JSON/SSE API (README: "The editor").

Options:
  --model DIR        model directory (chain.json, its VQGAN, examples/) or manifest (default: the shipped models/mnist)
  --port N           port (default 8080; 0 picks a free one)
  --host ADDR        address to listen on (default 127.0.0.1: this machine only)
  --workers N        model worker threads, each with its own copy of the model (default 1)
  --queue N          requests allowed to wait while every worker is busy; more get 503 (default 8)
  --max-count N      most images per request (default 16)
  --log              log every request

Example:
  imagebart serve --model models/mnist --port 8080
`;

export async function serveCommand(argv: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: argv, strict: true,
      options: {
        help: { type: 'boolean', short: 'h' }, model: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' },
        workers: { type: 'string' }, queue: { type: 'string' }, 'max-count': { type: 'string' }, log: { type: 'boolean' },
      },
    }).values;
    if (v.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const port = integer(v.port, 'port');
    if (port !== undefined && port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
    integer(v.workers, 'workers', 1);
    integer(v.queue, 'queue');
    integer(v['max-count'], 'max-count', 1);
  } catch (e) {
    process.stderr.write(`imagebart serve: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const server = await startServer({
    model: v.model ?? SHIPPED, workers: integer(v.workers, 'workers', 1), maxQueue: integer(v.queue, 'queue'),
    maxCount: integer(v['max-count'], 'max-count', 1), logger: !!v.log,
  });
  const url = await server.app.listen({ port: integer(v.port, 'port') ?? 8080, host: v.host ?? '127.0.0.1' });
  const m = server.pool.info;
  console.log(`imagebart editor: ${url}/  (model ${m.manifest}: T=${m.T}, K=${m.K}, ${m.resolution}×${m.resolution}, conditioning: ${m.conditioning.description}; Ctrl-C stops)`);
  await new Promise<void>((done) => {
    const stop = () => void server.close().then(done);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
