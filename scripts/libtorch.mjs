// Locates libtorch for the native build and prints what binding.gyp asks for.
// Order: $LIBTORCH (an official libtorch directory, e.g. a CUDA build), then Debian's libtorch-dev.
// c10d (distributed): Gloo when the c10d headers and Gloo's headers are there (Debian: libgloo-dev), NCCL
// when the build is a CUDA one and nccl.h is found; without them (or with IMAGEBART_NO_C10D=1)
// native/c10d.cc compiles to stubs.
// Usage: node scripts/libtorch.mjs include|libs|defines|check
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

const headerRoots = (lt) => [...lt.include, ...lt.include.map((d) => d.replace(/\/torch\/csrc\/api\/include$/, '')), '/usr/include'];
const cudaIncludes = () => [process.env.CUDA_HOME, '/usr/local/cuda'].filter(Boolean).map((d) => join(d, 'include'));

/** What the c10d part of the binding can be built with: { gloo, nccl, libgloo, include }. */
export function c10dSupport(lt) {
  if (process.env.IMAGEBART_NO_C10D) return { gloo: false, nccl: false, libgloo: false, include: [] };
  const roots = headerRoots(lt);
  const has = (rel, dirs = roots) => dirs.find((d) => existsSync(join(d, rel)));
  const c10d = has('torch/csrc/distributed/c10d/ProcessGroupGloo.hpp');
  const gloo = Boolean(c10d && has('gloo/context.h'));
  const ncclInc = has('nccl.h', [...roots, ...cudaIncludes()]);
  const nccl = gloo && Boolean(has('torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp')) && existsSync(join(lt.libdir, 'libtorch_cuda.so')) && Boolean(ncclInc);
  // Debian links Gloo as its own library; official libtorch builds carry it inside libtorch_cpu.
  const libgloo = gloo && [lt.libdir, '/usr/lib'].some((d) => existsSync(join(d, 'libgloo.so')));
  // c10d/reducer.hpp includes a distributed-autograd header that Debian's libtorch-dev lacks: a stand-in then.
  const compat = gloo && !has('torch/csrc/distributed/autograd/context/context.h') ? [fileURLToPath(new URL('../native/compat', import.meta.url))] : [];
  return { gloo, nccl, libgloo, include: [...compat, ...(nccl ? [ncclInc, ...cudaIncludes().filter((d) => existsSync(d))] : [])] };
}

function defines(lt) {
  const c = c10dSupport(lt);
  // a pip wheel's libtorch may use the pre-C++11 string ABI: IMAGEBART_CXX11_ABI=0|1 (torch._C._GLIBCXX_USE_CXX11_ABI)
  const abi = process.env.IMAGEBART_CXX11_ABI;
  return [...(c.gloo ? ['USE_C10D_GLOO'] : []), ...(c.nccl ? ['USE_C10D_NCCL'] : []), ...(abi === '0' || abi === '1' ? [`_GLIBCXX_USE_CXX11_ABI=${abi}`] : [])];
}

function libs(lt) {
  const names = ['torch', 'torch_cpu', 'c10'];
  const have = readdirSync(lt.libdir);
  // CUDA builds: link the CUDA parts too, kept even though no symbol is referenced, so their kernels register.
  for (const extra of ['torch_cuda', 'c10_cuda']) if (have.includes(`lib${extra}.so`)) names.push(extra);
  if (c10dSupport(lt).libgloo) names.push('gloo');
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
  if (what === 'include') console.log([...lt.include, ...c10dSupport(lt).include].join(' '));
  else if (what === 'defines') console.log(defines(lt).join(' '));
  else if (what === 'libs') console.log(libs(lt).join(' '));
  else if (what === 'check') console.log(`${lt.source} ${lt.libdir} c10d:${defines(lt).join(',') || 'none'}`);
  else process.exit(2);
}
