// Shared pieces of the N-API binding: the tensor handle and error translation.
// The binding is deliberately thin: a handle owning an at::Tensor, a generic caller for any
// ATen operator by schema (ops.cc), and the few things that are not operators (data in/out,
// autograd entry points, runtime settings).
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
#include <string>

namespace ib {

// JS handle owning one at::Tensor: a plain object, type-tagged and wrapping a NativeTensor.
// dispose() removes the wrap and frees at once; otherwise the garbage collector's finalizer
// does. (An ObjectWrap would keep every disposed handle's native part alive until the event
// loop next runs finalizers: ~250 bytes per operation in a long synchronous training loop.)
// Tensor sizes are reported to V8 so that collection keeps up.
struct NativeTensor {
  at::Tensor tensor;
  int64_t accounted = 0;

  static Napi::Value Wrap(Napi::Env env, at::Tensor t);
  // The tensor behind a JS handle; throws a JS TypeError for anything else or a disposed handle.
  static const at::Tensor& From(const Napi::Value& v, const char* what = "tensor");
  static bool Is(const Napi::Value& v);
  // Frees the tensor now; false if it was already disposed.
  static bool Dispose(const Napi::Value& v);
  static bool Disposed(const Napi::Value& v);
};

int64_t LiveTensors();

// Runs f, turning libtorch and C++ exceptions into JavaScript Errors with libtorch's message.
template <class F>
Napi::Value Guard(const Napi::CallbackInfo& info, F&& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

#define IB_FN(name) static Napi::Value name(const Napi::CallbackInfo& info)

void InitOps(Napi::Env env, Napi::Object exports);
void InitRuntime(Napi::Env env, Napi::Object exports);
void InitTensorFns(Napi::Env env, Napi::Object exports);
void InitC10d(Napi::Env env, Napi::Object exports);
void InitGenerator(Napi::Env env, Napi::Object exports);

// The generator behind a JS Generator handle (generator.cc); throws a JS TypeError for anything else.
at::Generator GeneratorFrom(const Napi::Value& v, const char* what);

}  // namespace ib
