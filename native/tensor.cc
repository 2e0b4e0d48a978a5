// The tensor handle, moving data between JS and tensors, and autograd entry points.
#include "common.h"
#include <torch/csrc/autograd/autograd.h>
#include <atomic>
#include <cstring>

namespace ib {

static std::atomic<int64_t> g_live{0};
// Off inside tidy() scopes, whose tensors are freed deterministically: reporting them would only
// make V8 run a full collection every few tens of MB of activations.
// Per thread: each worker thread has its own scopes.
static thread_local bool g_accounting = true;
static const napi_type_tag kTensorTag = {0x1b2a3c4d5e6f7081ULL, 0x9a8b7c6d5e4f3021ULL};

int64_t LiveTensors() { return g_live.load(); }

static int64_t AccountedBytes(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  const int64_t dense = t.numel() * static_cast<int64_t>(t.element_size());
  const int64_t storage = static_cast<int64_t>(t.storage().nbytes());
  return std::min(dense, storage);
}

static void Free(napi_env env, NativeTensor* nt) {
  if (nt->accounted) {
    int64_t ignored;
    napi_adjust_external_memory(env, -nt->accounted, &ignored);
  }
  delete nt;
  --g_live;
}

static void Finalize(napi_env env, void* data, void*) { Free(env, static_cast<NativeTensor*>(data)); }

Napi::Value NativeTensor::Wrap(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Undefined();
  Napi::Object obj = Napi::Object::New(env);
  NAPI_THROW_IF_FAILED(env, napi_type_tag_object(env, obj, &kTensorTag), Napi::Value());
  auto* nt = new NativeTensor{std::move(t), 0};
  if (g_accounting) nt->accounted = AccountedBytes(nt->tensor);
  napi_status st = napi_wrap(env, obj, nt, Finalize, nullptr, nullptr);
  if (st != napi_ok) {
    delete nt;
    NAPI_THROW_IF_FAILED(env, st, Napi::Value());
  }
  ++g_live;
  if (nt->accounted) Napi::MemoryManagement::AdjustExternalMemory(env, nt->accounted);
  return obj;
}

bool NativeTensor::Is(const Napi::Value& v) {
  if (!v.IsObject()) return false;
  bool tagged = false;
  napi_check_object_type_tag(v.Env(), v, &kTensorTag, &tagged);
  return tagged;
}

static NativeTensor* Unwrap(const Napi::Value& v) {
  void* data = nullptr;
  if (napi_unwrap(v.Env(), v, &data) != napi_ok) {
    bool pending;
    napi_is_exception_pending(v.Env(), &pending);
    if (pending) {
      napi_value e;
      napi_get_and_clear_last_exception(v.Env(), &e);
    }
    return nullptr;
  }
  return static_cast<NativeTensor*>(data);
}

const at::Tensor& NativeTensor::From(const Napi::Value& v, const char* what) {
  if (!Is(v)) throw Napi::TypeError::New(v.Env(), std::string("expected a tensor for ") + what);
  NativeTensor* nt = Unwrap(v);
  if (nt == nullptr) throw Napi::Error::New(v.Env(), std::string("tensor used after dispose() (") + what + ")");
  return nt->tensor;
}

bool NativeTensor::Dispose(const Napi::Value& v) {
  if (!Is(v)) return false;
  void* data = nullptr;
  if (napi_remove_wrap(v.Env(), v, &data) != napi_ok || data == nullptr) return false;
  Free(v.Env(), static_cast<NativeTensor*>(data));
  return true;
}

bool NativeTensor::Disposed(const Napi::Value& v) { return Unwrap(v) == nullptr; }

static std::vector<int64_t> ShapeArg(const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "shape must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) throw Napi::TypeError::New(v.Env(), "shape must be an array of integers");
    double d = e.As<Napi::Number>().DoubleValue();
    if (d < 0 || d != static_cast<double>(static_cast<int64_t>(d))) {
      throw Napi::RangeError::New(v.Env(), "shape entries must be non-negative integers");
    }
    out[i] = static_cast<int64_t>(d);
  }
  return out;
}

// fromData(bytes: ArrayBuffer | ArrayBufferView, dtype: number, shape: number[]) -> handle (a copy)
IB_FN(FromData) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const uint8_t* src = nullptr;
    size_t len = 0;
    if (info[0].IsArrayBuffer()) {
      auto ab = info[0].As<Napi::ArrayBuffer>();
      src = static_cast<const uint8_t*>(ab.Data());
      len = ab.ByteLength();
    } else if (info[0].IsTypedArray() || info[0].IsDataView()) {
      auto view = info[0].As<Napi::TypedArray>();
      auto ab = view.ArrayBuffer();
      src = static_cast<const uint8_t*>(ab.Data()) + view.ByteOffset();
      len = view.ByteLength();
    } else {
      throw Napi::TypeError::New(env, "fromData expects an ArrayBuffer or a typed array");
    }
    auto dtype = static_cast<at::ScalarType>(info[1].As<Napi::Number>().Int32Value());
    auto shape = ShapeArg(info[2]);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    const size_t want = static_cast<size_t>(t.numel()) * t.element_size();
    if (want != len) {
      throw Napi::RangeError::New(env, "data has " + std::to_string(len) + " bytes but shape and dtype need " +
                                           std::to_string(want));
    }
    if (want) std::memcpy(t.data_ptr(), src, want);
    return NativeTensor::Wrap(env, std::move(t));
  });
}

// toData(h) -> ArrayBuffer holding a contiguous CPU copy
IB_FN(ToData) {
  return Guard(info, [&]() -> Napi::Value {
    at::Tensor t = NativeTensor::From(info[0]).detach().to(at::kCPU).contiguous();
    const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    auto ab = Napi::ArrayBuffer::New(info.Env(), n);
    if (n) std::memcpy(ab.Data(), t.data_ptr(), n);
    return ab;
  });
}

// mapData(h) -> ArrayBuffer aliasing the tensor's own memory (CPU, contiguous). Writes go
// straight into the tensor: used to read files into tensors without an extra copy.
IB_FN(MapData) {
  return Guard(info, [&]() -> Napi::Value {
    const at::Tensor& t = NativeTensor::From(info[0]);
    if (!t.device().is_cpu() || !t.is_contiguous()) {
      throw Napi::Error::New(info.Env(), "mapData needs a contiguous CPU tensor");
    }
    const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    if (n == 0) return Napi::ArrayBuffer::New(info.Env(), 0);
    auto* keep = new at::Tensor(t);
    return Napi::ArrayBuffer::New(info.Env(), keep->data_ptr(), n,
                                  [](Napi::Env, void*, at::Tensor* k) { delete k; }, keep);
  });
}

IB_FN(Shape) {
  return Guard(info, [&]() -> Napi::Value {
    const at::Tensor& t = NativeTensor::From(info[0]);
    auto sizes = t.sizes();
    Napi::Array a = Napi::Array::New(info.Env(), sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) a.Set(i, Napi::Number::New(info.Env(), static_cast<double>(sizes[i])));
    return a;
  });
}

IB_FN(Dtype) {
  return Guard(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<int>(NativeTensor::From(info[0]).scalar_type()));
  });
}

IB_FN(DeviceOf) {
  return Guard(info, [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), NativeTensor::From(info[0]).device().str());
  });
}

IB_FN(RequiresGrad) {
  return Guard(info, [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), NativeTensor::From(info[0]).requires_grad());
  });
}

IB_FN(SetRequiresGrad) {
  return Guard(info, [&]() -> Napi::Value {
    at::Tensor t = NativeTensor::From(info[0]);
    t.set_requires_grad(info[1].ToBoolean());
    return info.Env().Undefined();
  });
}

IB_FN(IsLeaf) {
  return Guard(info, [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), NativeTensor::From(info[0]).is_leaf());
  });
}

IB_FN(Grad) {
  return Guard(info, [&]() -> Napi::Value { return NativeTensor::Wrap(info.Env(), NativeTensor::From(info[0]).grad()); });
}

// setGrad(h, g | undefined): replaces (or clears) the accumulated gradient.
IB_FN(SetGrad) {
  return Guard(info, [&]() -> Napi::Value {
    at::Tensor t = NativeTensor::From(info[0]);
    if (info[1].IsUndefined() || info[1].IsNull()) {
      t.mutable_grad() = at::Tensor();
    } else {
      t.mutable_grad() = NativeTensor::From(info[1], "gradient");
    }
    return info.Env().Undefined();
  });
}

static std::vector<at::Tensor> TensorArray(const Napi::Value& v, const char* what, bool allowHoles) {
  std::vector<at::Tensor> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of tensors");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (allowHoles && (e.IsUndefined() || e.IsNull())) out.emplace_back();
    else out.push_back(NativeTensor::From(e, what));
  }
  return out;
}

// backward(outputs[], gradOutputs[] | undefined, retainGraph, createGraph)
IB_FN(Backward) {
  return Guard(info, [&]() -> Napi::Value {
    auto outs = TensorArray(info[0], "outputs", false);
    auto grads = TensorArray(info[1], "gradient", true);
    bool retain = info[2].ToBoolean();
    bool create = info[3].ToBoolean();
    torch::autograd::backward(outs, grads, retain, create);
    return info.Env().Undefined();
  });
}

// grad(outputs[], inputs[], gradOutputs[] | undefined, retainGraph, createGraph, allowUnused) -> (handle|undefined)[]
IB_FN(AutogradGrad) {
  return Guard(info, [&]() -> Napi::Value {
    auto outs = TensorArray(info[0], "outputs", false);
    auto ins = TensorArray(info[1], "inputs", false);
    auto grads = TensorArray(info[2], "gradient", true);
    bool retain = info[3].ToBoolean();
    bool create = info[4].ToBoolean();
    bool allowUnused = info[5].ToBoolean();
    auto res = torch::autograd::grad(outs, ins, grads, retain, create, allowUnused);
    Napi::Array a = Napi::Array::New(info.Env(), res.size());
    for (size_t i = 0; i < res.size(); ++i) a.Set(i, NativeTensor::Wrap(info.Env(), res[i]));
    return a;
  });
}

IB_FN(Item) {
  return Guard(info, [&]() -> Napi::Value {
    const at::Tensor& t = NativeTensor::From(info[0]);
    if (t.numel() != 1) {
      throw Napi::Error::New(info.Env(), "item() needs a tensor with one element, got " + std::to_string(t.numel()));
    }
    at::Scalar s = t.item();
    if (s.isBoolean()) return Napi::Boolean::New(info.Env(), s.toBool());
    if (s.isIntegral(false)) return Napi::Number::New(info.Env(), static_cast<double>(s.toLong()));
    return Napi::Number::New(info.Env(), s.toDouble());
  });
}

// setAccounting(on): whether new tensors report their size to V8.
IB_FN(SetAccounting) {
  g_accounting = info[0].ToBoolean();
  return info.Env().Undefined();
}

// account(h): reports an unreported tensor's size (a tensor leaving the last tidy scope).
IB_FN(Account) {
  if (!NativeTensor::Is(info[0])) return info.Env().Undefined();
  NativeTensor* nt = Unwrap(info[0]);
  if (nt != nullptr && nt->accounted == 0) {
    nt->accounted = AccountedBytes(nt->tensor);
    if (nt->accounted) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), nt->accounted);
  }
  return info.Env().Undefined();
}

IB_FN(Dispose) { return Napi::Boolean::New(info.Env(), NativeTensor::Dispose(info[0])); }

IB_FN(IsDisposed) {
  if (!NativeTensor::Is(info[0])) throw Napi::TypeError::New(info.Env(), "expected a tensor");
  return Napi::Boolean::New(info.Env(), NativeTensor::Disposed(info[0]));
}

IB_FN(Live) { return Napi::Number::New(info.Env(), static_cast<double>(LiveTensors())); }

// setData(h, src): makes h's tensor use src's data (PyTorch's `p.data = src`), keeping the
// tensor's identity, so parameters can change device or dtype in place.
IB_FN(SetData) {
  return Guard(info, [&]() -> Napi::Value {
    at::Tensor t = NativeTensor::From(info[0]);
    t.set_data(NativeTensor::From(info[1], "data"));
    return info.Env().Undefined();
  });
}

// sameStorage(a, b): whether two tensors alias the same memory (views).
IB_FN(SameStorage) {
  return Guard(info, [&]() -> Napi::Value {
    const at::Tensor& a = NativeTensor::From(info[0]);
    const at::Tensor& b = NativeTensor::From(info[1]);
    return Napi::Boolean::New(info.Env(), a.has_storage() && b.has_storage() && a.storage().is_alias_of(b.storage()));
  });
}

void InitTensorFns(Napi::Env env, Napi::Object exports) {
  exports.Set("fromData", Napi::Function::New(env, FromData, "fromData"));
  exports.Set("toData", Napi::Function::New(env, ToData, "toData"));
  exports.Set("mapData", Napi::Function::New(env, MapData, "mapData"));
  exports.Set("shape", Napi::Function::New(env, Shape, "shape"));
  exports.Set("dtype", Napi::Function::New(env, Dtype, "dtype"));
  exports.Set("device", Napi::Function::New(env, DeviceOf, "device"));
  exports.Set("requiresGrad", Napi::Function::New(env, RequiresGrad, "requiresGrad"));
  exports.Set("setRequiresGrad", Napi::Function::New(env, SetRequiresGrad, "setRequiresGrad"));
  exports.Set("isLeaf", Napi::Function::New(env, IsLeaf, "isLeaf"));
  exports.Set("grad", Napi::Function::New(env, Grad, "grad"));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad, "setGrad"));
  exports.Set("backward", Napi::Function::New(env, Backward, "backward"));
  exports.Set("autogradGrad", Napi::Function::New(env, AutogradGrad, "autogradGrad"));
  exports.Set("item", Napi::Function::New(env, Item, "item"));
  exports.Set("setAccounting", Napi::Function::New(env, SetAccounting, "setAccounting"));
  exports.Set("account", Napi::Function::New(env, Account, "account"));
  exports.Set("dispose", Napi::Function::New(env, Dispose, "dispose"));
  exports.Set("isDisposed", Napi::Function::New(env, IsDisposed, "isDisposed"));
  exports.Set("liveTensors", Napi::Function::New(env, Live, "liveTensors"));
  exports.Set("setData", Napi::Function::New(env, SetData, "setData"));
  exports.Set("sameStorage", Napi::Function::New(env, SameStorage, "sameStorage"));
}

}  // namespace ib
