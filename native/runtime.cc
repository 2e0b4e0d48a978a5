// Process-wide settings: threads, seeding, grad mode, autocast, devices.
#include "common.h"
#include <ATen/Parallel.h>
#include <ATen/CPUGeneratorImpl.h>
#include <mutex>
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>
#include <dlfcn.h>
#include <malloc.h>
#include <cstdlib>

namespace ib {

// Debian's libtorch runs matmuls on the system BLAS (OpenBLAS, with its own thread pool) and
// convolutions on ATen's OpenMP pool; the two pools are set separately. BLAS is reached by
// symbol lookup since which BLAS is loaded is a property of the installation.
using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();

static void* Sym(const char* name) { return dlsym(RTLD_DEFAULT, name); }

IB_FN(SetNumThreads) {
  return Guard(info, [&]() -> Napi::Value {
    int n = info[0].As<Napi::Number>().Int32Value();
    if (n < 1) throw std::runtime_error("thread count must be at least 1");
    at::set_num_threads(n);
    return info.Env().Undefined();
  });
}

IB_FN(GetNumThreads) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

IB_FN(BlasInfo) {
  Napi::Object o = Napi::Object::New(info.Env());
  const char* name = Sym("openblas_set_num_threads") ? "openblas" : (Sym("mkl_set_num_threads") ? "mkl" : "unknown");
  o.Set("name", name);
  auto get = reinterpret_cast<GetThreadsFn>(Sym("openblas_get_num_threads"));
  if (!get) get = reinterpret_cast<GetThreadsFn>(Sym("mkl_get_max_threads"));
  o.Set("threads", get ? Napi::Value(Napi::Number::New(info.Env(), get())) : info.Env().Undefined());
  using CfgFn = char* (*)();
  auto cfg = reinterpret_cast<CfgFn>(Sym("openblas_get_config"));
  if (cfg) o.Set("config", std::string(cfg()));
  return o;
}

IB_FN(SetBlasThreads) {
  return Guard(info, [&]() -> Napi::Value {
    int n = info[0].As<Napi::Number>().Int32Value();
    if (n < 1) throw std::runtime_error("thread count must be at least 1");
    auto set = reinterpret_cast<SetThreadsFn>(Sym("openblas_set_num_threads"));
    if (!set) set = reinterpret_cast<SetThreadsFn>(Sym("mkl_set_num_threads"));
    return Napi::Boolean::New(info.Env(), set != nullptr && (set(n), true));
  });
}

IB_FN(ManualSeed) {
  return Guard(info, [&]() -> Napi::Value {
    double s = info[0].As<Napi::Number>().DoubleValue();
    if (s < 0 || s != static_cast<double>(static_cast<uint64_t>(s))) throw std::runtime_error("seed must be a non-negative integer");
    at::manual_seed(static_cast<uint64_t>(s));
    return info.Env().Undefined();
  });
}

// The CPU generator's state as a uint8 tensor, to checkpoint and restore random streams exactly.
IB_FN(GetRngState) {
  return Guard(info, [&]() -> Napi::Value {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return NativeTensor::Wrap(info.Env(), gen.get_state());
  });
}

IB_FN(SetRngState) {
  return Guard(info, [&]() -> Napi::Value {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(NativeTensor::From(info[0], "rng state"));
    return info.Env().Undefined();
  });
}

IB_FN(SetGradEnabled) {
  c10::GradMode::set_enabled(info[0].ToBoolean());
  return info.Env().Undefined();
}

IB_FN(IsGradEnabled) { return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled()); }

// setAutocast(deviceType 'cpu'|'cuda', enabled, dtype, entering) -> previous enabled state.
// Entering a scope increments autocast's nesting; leaving decrements it and drops the cast cache at 0.
IB_FN(SetAutocast) {
  return Guard(info, [&]() -> Napi::Value {
    std::string dev = info[0].As<Napi::String>();
    bool enabled = info[1].ToBoolean();
    auto dtype = static_cast<at::ScalarType>(info[2].As<Napi::Number>().Int32Value());
    bool prev;
    if (dev == "cpu") {
      prev = at::autocast::is_cpu_enabled();
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(enabled);
    } else if (dev == "cuda") {
      prev = at::autocast::is_enabled();
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(enabled);
    } else {
      throw std::runtime_error("autocast device must be 'cpu' or 'cuda'");
    }
    if (info[3].ToBoolean()) at::autocast::increment_nesting();
    else if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    return Napi::Boolean::New(info.Env(), prev);
  });
}

IB_FN(CudaDeviceCount) {
  return Napi::Number::New(info.Env(), at::hasCUDA() ? static_cast<double>(at::getNumGPUs()) : 0.0);
}

IB_FN(Config) { return Napi::String::New(info.Env(), at::show_config() + at::get_parallel_info()); }

// glibc returns the top of the heap to the OS once more than M_TRIM_THRESHOLD is free there.
// A tidy() scope frees a whole training step's activations at once, so with the default
// threshold every step re-faults its memory page by page (a transformer step ran 1.6x slower).
// Keep up to IMAGEBART_MALLOC_TRIM bytes (default 1 GiB) and serve large tensors from the heap.
static void TuneMalloc() {
#ifdef M_TRIM_THRESHOLD
  const char* env = std::getenv("IMAGEBART_MALLOC_TRIM");
  long trim = env ? std::atol(env) : (1L << 30);
  if (trim > 0) {
    mallopt(M_TRIM_THRESHOLD, static_cast<int>(std::min<long>(trim, 0x7fffffffL)));
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
  }
#endif
}

void InitRuntime(Napi::Env env, Napi::Object exports) {
  TuneMalloc();
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("blasInfo", Napi::Function::New(env, BlasInfo, "blasInfo"));
  exports.Set("setBlasThreads", Napi::Function::New(env, SetBlasThreads, "setBlasThreads"));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed, "manualSeed"));
  exports.Set("getRngState", Napi::Function::New(env, GetRngState, "getRngState"));
  exports.Set("setRngState", Napi::Function::New(env, SetRngState, "setRngState"));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled, "setGradEnabled"));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled, "isGradEnabled"));
  exports.Set("setAutocast", Napi::Function::New(env, SetAutocast, "setAutocast"));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount, "cudaDeviceCount"));
  exports.Set("config", Napi::Function::New(env, Config, "config"));
}

}  // namespace ib
