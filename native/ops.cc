// Calls any ATen operator through the dispatcher, converting JS arguments by the operator's
// schema. Autograd, autocast and device dispatch all happen inside the dispatcher, exactly as
// for PyTorch. `opHandle(name, overload)` resolves an operator once; `callOp(id, ...args)` calls it.
#include "common.h"
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/jit_type.h>
#include <cmath>
#include <deque>
#include <mutex>

namespace ib {

enum class Kind : uint8_t { Tensor, TensorList, OptTensorList, Int, IntList, Float, FloatList, Bool, BoolList, Scalar, String, Device, Generator };

struct ArgSpec {
  std::string name;
  Kind kind;
  bool optional;
  c10::optional<int32_t> n;
  c10::optional<c10::IValue> def;
};

struct OpEntry {
  c10::OperatorHandle handle;
  std::string name;
  std::vector<ArgSpec> args;
  bool returnsAlias;  // in-place ops: the result is `self`, so nothing new is returned
};

// One registry for every thread that loads the addon (the main thread and workers): entries never
// move (a deque), and the mutex guards growth against lookups from other threads.
static std::deque<OpEntry>& Ops() {
  static std::deque<OpEntry> ops;
  return ops;
}
static std::mutex& OpsMutex() {
  static std::mutex m;
  return m;
}
static const OpEntry& OpAt(const Napi::Value& v) {
  size_t id = v.As<Napi::Number>().Uint32Value();
  std::lock_guard<std::mutex> lock(OpsMutex());
  if (id >= Ops().size()) throw std::runtime_error("unknown operator id");
  return Ops()[id];
}

static Kind Classify(const c10::TypePtr& t, const std::string& op, const std::string& arg) {
  switch (t->kind()) {
    case c10::TypeKind::TensorType: return Kind::Tensor;
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType: return Kind::Int;
    case c10::TypeKind::FloatType: return Kind::Float;
    case c10::TypeKind::BoolType: return Kind::Bool;
    case c10::TypeKind::NumberType: return Kind::Scalar;
    case c10::TypeKind::StringType: return Kind::String;
    case c10::TypeKind::DeviceObjType: return Kind::Device;
    case c10::TypeKind::GeneratorType: return Kind::Generator;
    case c10::TypeKind::ListType: {
      auto elem = t->castRaw<c10::ListType>()->getElementType();
      if (elem->kind() == c10::TypeKind::OptionalType) {
        auto inner = elem->castRaw<c10::OptionalType>()->getElementType();
        if (inner->kind() == c10::TypeKind::TensorType) return Kind::OptTensorList;
        break;
      }
      switch (Classify(elem, op, arg)) {
        case Kind::Tensor: return Kind::TensorList;
        case Kind::Int: return Kind::IntList;
        case Kind::Float: return Kind::FloatList;
        case Kind::Bool: return Kind::BoolList;
        default: break;
      }
      break;
    }
    default: break;
  }
  throw std::runtime_error(op + ": argument '" + arg + "' has type " + t->str() + ", which the binding does not support");
}

// opHandle(name, overload) -> id
static Napi::Value OpHandle(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::string name = info[0].As<Napi::String>();
    std::string overload = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    auto h = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!h) throw std::runtime_error("no operator " + name + (overload.empty() ? "" : "." + overload) + " in this libtorch");
    const c10::FunctionSchema& s = h->schema();
    OpEntry e{*h, name + (overload.empty() ? "" : "." + overload), {}, false};
    for (const auto& a : s.arguments()) {
      c10::TypePtr t = a.type();
      bool optional = false;
      if (t->kind() == c10::TypeKind::OptionalType) {
        optional = true;
        t = t->castRaw<c10::OptionalType>()->getElementType();
      }
      e.args.push_back({a.name(), Classify(t, e.name, a.name()), optional, a.N(), a.default_value()});
    }
    const auto& rets = s.returns();
    e.returnsAlias = rets.size() == 1 && rets[0].alias_info() != nullptr && rets[0].alias_info()->isWrite();
    std::lock_guard<std::mutex> lock(OpsMutex());
    Ops().push_back(std::move(e));
    return Napi::Number::New(info.Env(), static_cast<double>(Ops().size() - 1));
  });
}

static Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::ostringstream os;
    os << OpAt(info[0]).handle.schema();
    return Napi::String::New(info.Env(), os.str());
  });
}

[[noreturn]] static void BadArg(const OpEntry& op, const ArgSpec& a, const char* expected) {
  throw std::runtime_error(op.name + ": argument '" + a.name + "' must be " + expected);
}

static int64_t ToInt(const OpEntry& op, const ArgSpec& a, const Napi::Value& v) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  if (!v.IsNumber()) BadArg(op, a, "an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d)) BadArg(op, a, "an integer");
  return static_cast<int64_t>(d);
}

static double ToFloat(const OpEntry& op, const ArgSpec& a, const Napi::Value& v) {
  if (!v.IsNumber()) BadArg(op, a, "a number");
  return v.As<Napi::Number>().DoubleValue();
}

static c10::IValue Convert(const OpEntry& op, const ArgSpec& a, const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) {
    if (a.def) return *a.def;
    if (a.optional) return c10::IValue();
    throw std::runtime_error(op.name + ": missing argument '" + a.name + "'");
  }
  switch (a.kind) {
    case Kind::Tensor: return NativeTensor::From(v, a.name.c_str());
    case Kind::Int: return ToInt(op, a, v);
    case Kind::Float: return ToFloat(op, a, v);
    case Kind::Bool:
      if (!v.IsBoolean()) BadArg(op, a, "a boolean");
      return v.As<Napi::Boolean>().Value();
    case Kind::Scalar: {
      if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
      if (!v.IsNumber()) BadArg(op, a, "a number");
      double d = v.As<Napi::Number>().DoubleValue();
      // Integral JS numbers become integer scalars so integer tensors keep their dtype.
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.007199254740992e15) return c10::Scalar(static_cast<int64_t>(d));
      return c10::Scalar(d);
    }
    case Kind::String:
      if (!v.IsString()) BadArg(op, a, "a string");
      return v.As<Napi::String>().Utf8Value();
    case Kind::Device:
      if (!v.IsString()) BadArg(op, a, "a device string such as 'cpu' or 'cuda:0'");
      return c10::Device(v.As<Napi::String>().Utf8Value());
    case Kind::Generator: return GeneratorFrom(v, a.name.c_str());
    case Kind::IntList: {
      if (v.IsNumber() && a.n) return c10::List<int64_t>(std::vector<int64_t>(*a.n, ToInt(op, a, v)));
      if (!v.IsArray()) BadArg(op, a, "an array of integers");
      Napi::Array arr = v.As<Napi::Array>();
      c10::List<int64_t> out;
      out.reserve(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(ToInt(op, a, arr.Get(i)));
      return out;
    }
    case Kind::FloatList: {
      if (!v.IsArray()) BadArg(op, a, "an array of numbers");
      Napi::Array arr = v.As<Napi::Array>();
      c10::List<double> out;
      for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(ToFloat(op, a, arr.Get(i)));
      return out;
    }
    case Kind::BoolList: {
      if (!v.IsArray()) BadArg(op, a, "an array of booleans");
      Napi::Array arr = v.As<Napi::Array>();
      c10::List<bool> out;
      for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(arr.Get(i).ToBoolean().Value());
      return out;
    }
    case Kind::TensorList: {
      if (!v.IsArray()) BadArg(op, a, "an array of tensors");
      Napi::Array arr = v.As<Napi::Array>();
      c10::List<at::Tensor> out;
      out.reserve(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(NativeTensor::From(arr.Get(i), a.name.c_str()));
      return out;
    }
    case Kind::OptTensorList: {
      if (!v.IsArray()) BadArg(op, a, "an array of tensors or nulls");
      Napi::Array arr = v.As<Napi::Array>();
      c10::List<c10::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Value e = arr.Get(i);
        if (e.IsUndefined() || e.IsNull()) out.push_back(c10::nullopt);
        else out.push_back(NativeTensor::From(e, a.name.c_str()));
      }
      return out;
    }
  }
  throw std::runtime_error("unreachable");
}

static Napi::Value ToJs(Napi::Env env, c10::IValue v) {
  if (v.isTensor()) return NativeTensor::Wrap(env, std::move(v).toTensor());
  if (v.isNone()) return env.Undefined();
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isScalar()) {
    at::Scalar s = v.toScalar();
    return Napi::Number::New(env, s.isIntegral(false) ? static_cast<double>(s.toLong()) : s.toDouble());
  }
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) a.Set(i, NativeTensor::Wrap(env, list.get(i)));
    return a;
  }
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    Napi::Array a = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); ++i) a.Set(i, ToJs(env, elems[i]));
    return a;
  }
  if (v.isIntList()) {
    auto list = v.toIntList();
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) a.Set(i, Napi::Number::New(env, static_cast<double>(list.get(i))));
    return a;
  }
  throw std::runtime_error("operator returned a value of type " + v.tagKind() + ", which the binding does not convert");
}

// callOp(id, ...args): positional arguments in schema order; undefined takes the default.
static Napi::Value CallOp(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const OpEntry& op = OpAt(info[0]);
    const size_t given = info.Length() - 1;
    if (given > op.args.size()) {
      throw std::runtime_error(op.name + " takes " + std::to_string(op.args.size()) + " arguments, got " + std::to_string(given));
    }
    torch::jit::Stack stack;
    stack.reserve(op.args.size());
    for (size_t i = 0; i < op.args.size(); ++i) {
      stack.push_back(Convert(op, op.args[i], i < given ? info[i + 1] : info.Env().Undefined()));
    }
    op.handle.callBoxed(&stack);
    if (op.returnsAlias || stack.empty()) return info.Env().Undefined();
    if (stack.size() == 1) return ToJs(info.Env(), std::move(stack[0]));
    Napi::Array a = Napi::Array::New(info.Env(), stack.size());
    for (size_t i = 0; i < stack.size(); ++i) a.Set(i, ToJs(info.Env(), std::move(stack[i])));
    return a;
  });
}

void InitOps(Napi::Env env, Napi::Object exports) {
  exports.Set("opHandle", Napi::Function::New(env, OpHandle, "opHandle"));
  exports.Set("opSchema", Napi::Function::New(env, OpSchema, "opSchema"));
  exports.Set("callOp", Napi::Function::New(env, CallOp, "callOp"));
}

}  // namespace ib
