// Locates libtorch for the native build and prints what binding.gyp asks for.
// Order: $LIBTORCH (an official libtorch directory, e.g. a CUDA build), then Debian's libtorch-dev.
// Usage: node scripts/libtorch.mjs include|libdirs|libs|check
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export function findLibtorch() {
  const root = process.env.LIBTORCH;
  if (root) {
    const inc = join(root, 'include');
    const lib = join(root, 'lib');
    if (!existsSync(join(inc, 'ATen', 'ATen.h')) || !existsSync(lib)) {
      throw new Error(`LIBTORCH=${root} does not look like a libtorch directory (expected include/ATen/ATen.h and lib/)`);
    }
    return { source: 'LIBTORCH', include: [inc, join(inc, 'torch', 'csrc', 'api', 'include')], libdir: lib };
  }
  const debInc = '/usr/include/ATen/ATen.h';
  const arch = ['x86_64-linux-gnu', 'aarch64-linux-gnu'].find((a) => existsSync(`/usr/lib/${a}/libtorch.so`));
  if (existsSync(debInc) && arch) {
    return { source: 'debian', include: ['/usr/include/torch/csrc/api/include'], libdir: `/usr/lib/${arch}` };
  }
  return null;
}

function libs(lt) {
  const names = ['torch', 'torch_cpu', 'c10'];
  const have = readdirSync(lt.libdir);
  // CUDA builds: link the CUDA parts too, kept even though no symbol is referenced, so their kernels register.
  for (const extra of ['torch_cuda', 'c10_cuda']) if (have.includes(`lib${extra}.so`)) names.push(extra);
  return [`-L${lt.libdir}`, `-Wl,-rpath,${lt.libdir}`, '-Wl,--no-as-needed', ...names.map((n) => `-l${n}`), '-Wl,--as-needed'];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const what = process.argv[2];
  let lt;
  try {
    lt = findLibtorch();
  } catch (e) {
    console.error(String(e.message ?? e));
    process.exit(1);
  }
  if (!lt) {
    if (what === 'check') process.exit(1);
    console.error('libtorch not found: set LIBTORCH to a libtorch directory or install Debian\'s libtorch-dev');
    process.exit(1);
  }
  if (what === 'include') console.log(lt.include.join(' '));
  else if (what === 'libs') console.log(libs(lt).join(' '));
  else if (what === 'check') console.log(`${lt.source} ${lt.libdir}`);
  else process.exit(2);
}
