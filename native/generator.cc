// Per-request random number generators: a JS handle owning one at::Generator (a CPU mt19937), so
// concurrent work (several worker threads, interleaved requests) draws from its own stream instead
// of libtorch's process-global generator. Operators whose schema takes `Generator?` (multinomial,
// rand.generator, randint.low_generator, …) accept the handle (ops.cc).
//
// Seeding: libtorch's mt19937 keeps only the low 32 bits of a seed, so seeds 0 and 2^32 would give
// the same stream. Here all 624 state words are filled from splitmix64 (Steele et al. 2014) started
// at the full 64-bit seed — z += 0x9e3779b97f4a7c15; z = (z ^ z>>30)·0xbf58476d1ce4e5b9;
// z = (z ^ z>>27)·0x94d049bb133111eb; z ^ z>>31 — so every 64-bit seed has its own stream.
#include "common.h"
#include <ATen/CPUGeneratorImpl.h>
#include <mutex>

namespace ib {

static const napi_type_tag kGeneratorTag = {0x6a1f3e5c7b9d2041ULL, 0x83c5e7a9b1d3f562ULL};

static uint64_t SplitMix64(uint64_t& z) {
  uint64_t x = (z += 0x9e3779b97f4a7c15ULL);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static at::Generator SeededGenerator(uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  at::mt19937_data_pod pod{};
  pod.seed_ = seed;
  pod.seeded_ = true;
  pod.left_ = 1;  // the next draw regenerates the state first, as a fresh mt19937 does
  pod.next_ = 0;
  uint64_t z = seed;
  for (auto& w : pod.state_) w = static_cast<uint32_t>(SplitMix64(z) >> 32);
  at::mt19937 engine;
  engine.set_data(pod);
  auto* impl = g.get<at::CPUGeneratorImpl>();
  std::lock_guard<std::mutex> lock(g.mutex());
  impl->set_engine(engine);
  return g;
}

static void FinalizeGenerator(napi_env, void* data, void*) { delete static_cast<at::Generator*>(data); }

// newGenerator(seed: bigint) -> handle
IB_FN(NewGenerator) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsBigInt()) throw std::runtime_error("generator seed must be a BigInt");
    bool lossless = false;
    uint64_t seed = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw std::runtime_error("generator seed must lie in [0, 2^64)");
    Napi::Object obj = Napi::Object::New(info.Env());
    NAPI_THROW_IF_FAILED(info.Env(), napi_type_tag_object(info.Env(), obj, &kGeneratorTag), Napi::Value());
    auto* g = new at::Generator(SeededGenerator(seed));
    napi_status st = napi_wrap(info.Env(), obj, g, FinalizeGenerator, nullptr, nullptr);
    if (st != napi_ok) {
      delete g;
      NAPI_THROW_IF_FAILED(info.Env(), st, Napi::Value());
    }
    return obj;
  });
}

at::Generator GeneratorFrom(const Napi::Value& v, const char* what) {
  bool tagged = false;
  if (v.IsObject()) napi_check_object_type_tag(v.Env(), v, &kGeneratorTag, &tagged);
  if (!tagged) throw Napi::TypeError::New(v.Env(), std::string("expected a Generator for ") + what);
  void* data = nullptr;
  if (napi_unwrap(v.Env(), v, &data) != napi_ok || data == nullptr) throw Napi::Error::New(v.Env(), std::string("invalid Generator for ") + what);
  return *static_cast<at::Generator*>(data);
}

void InitGenerator(Napi::Env env, Napi::Object exports) {
  exports.Set("newGenerator", Napi::Function::New(env, NewGenerator, "newGenerator"));
}

}  // namespace ib
