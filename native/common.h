// Shared pieces of the N-API binding: the tensor handle and error translation.
// The binding is deliberately thin: a handle owning an at::Tensor, a generic caller for any
// ATen operator by schema (ops.cc), and the few things that are not operators (data in/out,
// autograd entry points, runtime settings).
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
#include <string>

namespace ib {

// JS handle owning one at::Tensor. Storage is freed by dispose() or, failing that, by the
// garbage collector; the tensor's size is reported to V8 so that collection keeps up.
class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Value Wrap(Napi::Env env, at::Tensor t);
  // The tensor behind a JS handle; throws a JS TypeError for anything else or a disposed handle.
  static const at::Tensor& From(const Napi::Value& v, const char* what = "tensor");
  static bool Is(const Napi::Value& v);

  explicit NativeTensor(const Napi::CallbackInfo& info);
  ~NativeTensor() override;
  void Release(Napi::Env env);

  at::Tensor tensor;

 private:
  int64_t accounted_ = 0;
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

}  // namespace ib
