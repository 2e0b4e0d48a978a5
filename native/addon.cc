#include "common.h"

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  ib::InitTensorFns(env, exports);
  ib::InitOps(env, exports);
  ib::InitRuntime(env, exports);
  ib::InitC10d(env, exports);
  ib::InitGenerator(env, exports);
  return exports;
}

NODE_API_MODULE(imagebart_native, InitModule)
