// PyTorch's c10d in the binding: a TCPStore for rendezvous (rank 0 hosts it) and a process group
// (Gloo on CPU; NCCL when the libtorch build has it) with in-place all-reduce, broadcast and barrier.
// Every blocking call is bounded by the group's timeout; failures (a peer gone, a timeout, a port in
// use) come back as JS errors prefixed with the rank, the world size and the master address.
// Gradients are averaged by c10d::Reducer, DistributedDataParallel's engine: autograd hooks on the
// parameters' gradient accumulators launch each bucket's all-reduce as soon as its gradients are
// ready, so communication overlaps the rest of the backward pass.
// Compiled to stubs that say so when libtorch was built without c10d or Gloo's headers are missing.
#include "common.h"

#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <torch/csrc/autograd/autograd.h>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <type_traits>
#include <unordered_set>
#endif

namespace ib {

#ifdef USE_C10D_GLOO

// One process's membership of a group: the store it rendezvoused through and the process group.
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  int rank = 0, world = 1;
  std::string backend, where;
  std::chrono::milliseconds timeout{0};
};

static const napi_type_tag kGroupTag = {0x8f3c2a51d04e4b7aULL, 0x9b1e6c0d2f7a4e13ULL};

// Runs f, turning failures into JS errors that say which rank of which group failed; a collective's
// failure (`collective`) also says what it means, since Gloo sees a dead peer as a closed socket or,
// when the op was posted after the close, as a timeout.
template <class F>
static Napi::Value GroupGuard(const Napi::CallbackInfo& info, const std::string& who, F&& f, bool collective = false) {
  const std::string hint = collective ? " (a rank exited or stopped responding: see its own output)" : "";
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), who + ": " + e.what_without_backtrace() + hint);
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), who + ": " + e.what() + hint);
  }
}

static std::string Describe(int rank, int world, const std::string& host, int port, const std::string& backend) {
  return "c10d rank " + std::to_string(rank) + "/" + std::to_string(world) + " (" + backend + ", master " + host + ":" + std::to_string(port) + ")";
}

// The local IPv4 address this host uses to reach `host` (a UDP connect sends nothing), so that Gloo
// listens where the peers can reach it whatever the host name resolves to (e.g. in a network namespace).
static std::string LocalAddressTowards(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) throw std::runtime_error("cannot resolve master address " + host);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in local{};
  socklen_t len = sizeof local;
  bool ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  freeaddrinfo(res);
  if (fd >= 0) close(fd);
  if (!ok) throw std::runtime_error("no route to master address " + host);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &local.sin_addr, buf, sizeof buf);
  return buf;
}

// The T behind a handle tagged `tag`: a TypeError for anything else, an Error once it was freed.
template <class T>
static T* Unwrap(const Napi::Value& v, const napi_type_tag& tag, const char* what, const char* freed) {
  bool ok = false;
  if (v.IsObject() && napi_check_object_type_tag(v.Env(), v, &tag, &ok) == napi_ok && ok) {
    void* p = nullptr;
    napi_unwrap(v.Env(), v, &p);
    if (p) return static_cast<T*>(p);
    throw Napi::Error::New(v.Env(), std::string("c10d: the ") + what + " was " + freed);
  }
  throw Napi::TypeError::New(v.Env(), std::string("c10d: expected a ") + what);
}

static Group* GroupFrom(const Napi::Value& v) { return Unwrap<Group>(v, kGroupTag, "process group", "destroyed"); }

static std::vector<at::Tensor> TensorList(const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "c10d: expected an array of tensors");
  auto arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    const at::Tensor& t = NativeTensor::From(arr.Get(i), "c10d tensor");
    if (!t.is_contiguous()) throw Napi::TypeError::New(v.Env(), "c10d: tensors must be contiguous (tensor " + std::to_string(i) + " is not)");
    out.push_back(t);
  }
  return out;
}

// Launches one collective per tensor (the backend runs them concurrently), then waits for all within the timeout.
template <class Launch>
static void RunEach(Group* g, std::vector<at::Tensor>& ts, Launch&& launch) {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto& t : ts) {
    std::vector<at::Tensor> one{t};
    works.push_back(launch(one));
  }
  for (auto& w : works) w->wait(g->timeout);
}

// createGroup({rank, worldSize, host, port, timeoutMs, backend}) -> group. Rank 0 hosts the TCPStore
// on host:port and waits for the other ranks; the others connect to it (retrying until the timeout).
IB_FN(CreateGroup) {
  auto o = info[0].As<Napi::Object>();
  int rank = o.Get("rank").As<Napi::Number>().Int32Value();
  int world = o.Get("worldSize").As<Napi::Number>().Int32Value();
  std::string host = o.Get("host").As<Napi::String>();
  int port = o.Get("port").As<Napi::Number>().Int32Value();
  auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.Get("timeoutMs").As<Napi::Number>().DoubleValue()));
  std::string backend = o.Get("backend").As<Napi::String>();
  std::string who = Describe(rank, world, host, port, backend);
  return GroupGuard(info, who, [&]() -> Napi::Value {
    if (world < 1 || rank < 0 || rank >= world) throw std::runtime_error("rank must lie in 0..worldSize-1");
    if (port < 1 || port > 65535) throw std::runtime_error("port must lie in 1..65535");
    auto g = std::make_unique<Group>();
    g->rank = rank; g->world = world; g->backend = backend; g->where = who; g->timeout = timeout;
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = static_cast<size_t>(world);
    so.waitWorkers = true;
    so.timeout = timeout;
    try {
      g->store = c10::make_intrusive<c10d::TCPStore>(host, so);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(rank == 0 ? "cannot host the rendezvous store on " : "cannot join the rendezvous store at ") +
                               host + ":" + std::to_string(port) + ": " + e.what());
    }
    if (backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      opts->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                                : c10d::ProcessGroupGloo::createDeviceForHostname(LocalAddressTowards(host, port)));
      opts->threads = 2;
      g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, world, opts);
    } else if (backend == "nccl") {
#ifdef USE_C10D_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, rank, world, opts);
#else
      throw std::runtime_error("this libtorch build has no NCCL (use backend gloo)");
#endif
    } else {
      throw std::runtime_error("backend must be 'gloo' or 'nccl', got '" + backend + "'");
    }
    Napi::Object handle = Napi::Object::New(info.Env());
    napi_type_tag_object(info.Env(), handle, &kGroupTag);
    napi_wrap(info.Env(), handle, g.release(), [](napi_env, void* p, void*) { delete static_cast<Group*>(p); }, nullptr, nullptr);
    return handle;
  });
}

// allReduce(group, tensors, op 'sum'|'mean'|'max'|'min'): each tensor reduced in place across the ranks.
IB_FN(AllReduce) {
  Group* g = GroupFrom(info[0]);
  auto ts = TensorList(info[1]);
  std::string op = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "sum";
  c10d::AllreduceOptions ao;
  ao.timeout = g->timeout;
  GroupGuard(info, g->where, [&]() -> Napi::Value {
    if (op == "sum" || op == "mean") ao.reduceOp = c10d::ReduceOp::SUM;
    else if (op == "max") ao.reduceOp = c10d::ReduceOp::MAX;
    else if (op == "min") ao.reduceOp = c10d::ReduceOp::MIN;
    else throw std::runtime_error("allReduce op must be sum, mean, max or min, got '" + op + "'");
    return info.Env().Undefined();
  });
  return GroupGuard(info, g->where, [&]() -> Napi::Value {
    c10::InferenceMode guard;  // in-place on leaves' .grad or parameters: no autograd bookkeeping
    RunEach(g, ts, [&](std::vector<at::Tensor>& one) { return g->pg->allreduce(one, ao); });
    if (op == "mean") for (auto& t : ts) t.div_(g->world);
    return info.Env().Undefined();
  }, true);
}

// broadcast(group, tensors, root): every rank's tensors overwritten in place with the root's.
IB_FN(Broadcast) {
  Group* g = GroupFrom(info[0]);
  auto ts = TensorList(info[1]);
  int root = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
  return GroupGuard(info, g->where, [&]() -> Napi::Value {
    if (root < 0 || root >= g->world) throw std::runtime_error("broadcast root must lie in 0..worldSize-1");
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    bo.timeout = g->timeout;
    c10::InferenceMode guard;
    RunEach(g, ts, [&](std::vector<at::Tensor>& one) { return g->pg->broadcast(one, bo); });
    return info.Env().Undefined();
  }, true);
}

IB_FN(Barrier) {
  Group* g = GroupFrom(info[0]);
  return GroupGuard(info, g->where, [&]() -> Napi::Value {
    c10d::BarrierOptions bo;
    bo.timeout = g->timeout;
    g->pg->barrier(bo)->wait(g->timeout);
    return info.Env().Undefined();
  }, true);
}

// destroyGroup(group): frees the process group and the store now (rank 0's store stops serving).
IB_FN(DestroyGroup) {
  void* p = nullptr;
  GroupFrom(info[0]);
  napi_remove_wrap(info.Env(), info[0], &p);
  delete static_cast<Group*>(p);
  return info.Env().Undefined();
}

// ---- c10d::Reducer ------------------------------------------------------------------------------
//
// What DistributedDataParallel does with it, without its Python wrapper:
//  - buckets: c10d::compute_bucket_assignment_by_size over the parameters in definition order, with
//    DDP's limits (a small first bucket, then `bucketBytes`), reversed, so that the buckets of the
//    last layers, whose gradients the backward pass produces first, are reduced first;
//  - before a synced backward: prepare_for_forward (counts the iteration for the timer) and
//    prepare_for_backward(loss) (with findUnusedParameters, a walk of the autograd graph that marks
//    the parameters this loss does not reach as ready at once);
//  - during it: each parameter's hook copies its gradient, divided by the world size, into its
//    bucket; a full bucket's all-reduce is launched asynchronously (in bucket order);
//  - at its end (an autograd final callback): wait for every bucket, write the averages into
//    param.grad (a parameter no rank's loss reached keeps none);
//  - micro-batches of gradient accumulation (DDP's no_sync) skip prepare_for_backward: the hooks then
//    return at once and the gradients add up locally until the synced backward of the last one.
// Bucket rebuilding is off: DDP (without find_unused_parameters) records the order gradients arrive
// in during every synced backward until its forward calls rebuild_buckets, which re-buckets by that
// order once; here the Reducer is told at once that it has rebuilt, so it records nothing and the
// buckets stay those computed here. gradient_as_bucket_view is off (gradients are copied in and out
// of the buckets, as DDP's default). Runtime stats are
// recorded every iteration (sample rate 1) so that each step's timeline can be read.

// c10d::Reducer with read access to what it records (its buckets, its timer, whether the last synced
// backward pass reached its final callback) and its bucket rebuilding turned off.
class OpenReducer : public c10d::Reducer {
 public:
  using c10d::Reducer::Reducer;
  void keepBuckets() { has_rebuilt_bucket_ = true; }
  bool awaitingHooks() const { return expect_autograd_hooks_; }
  size_t numBuckets() const { return buckets_.size(); }
  size_t bucketPending(size_t b) const { return buckets_[b].pending; }
  int64_t bucketBytes(size_t b) const { return buckets_[b].gradients.numel() * buckets_[b].gradients.element_size(); }
  const std::vector<size_t>& bucketParams(size_t b) const { return buckets_[b].variable_indices; }
  c10::optional<int64_t> at(c10d::Timer::Event e) const { return timer_ ? timer_->getTimestamp(e) : c10::nullopt; }
};

// The Reducer's constructor as this libtorch declares it: libtorch 1.13 to 2.x (bucket size limits
// given), later ones (no limits; then the flags skip_all_reduce_unused_params and use_python_reducer,
// both off, and an empty per-bucket cap list). gradient_as_bucket_view off.
template <class R>
static std::unique_ptr<R> MakeReducer(std::vector<at::Tensor> params, std::vector<std::vector<size_t>> buckets, std::vector<size_t> limits,
                                      c10::intrusive_ptr<c10d::ProcessGroup> pg, std::vector<bool> sparse, int64_t cap, bool findUnused,
                                      std::unordered_map<size_t, std::string> names, int64_t first) {
  using Params = std::vector<at::Tensor>;
  using Buckets = std::vector<std::vector<size_t>>;
  using Pg = c10::intrusive_ptr<c10d::ProcessGroup>;
  using Names = std::unordered_map<size_t, std::string>;
  if constexpr (std::is_constructible_v<R, Params, Buckets, std::vector<size_t>, Pg, std::vector<bool>, int64_t, bool, bool, Names, int64_t>) {
    return std::make_unique<R>(std::move(params), std::move(buckets), std::move(limits), std::move(pg), std::move(sparse), cap, findUnused, false, std::move(names), first);
  } else if constexpr (std::is_constructible_v<R, Params, Buckets, Pg, std::vector<bool>, int64_t, bool, bool, Names, int64_t>) {
    return std::make_unique<R>(std::move(params), std::move(buckets), std::move(pg), std::move(sparse), cap, findUnused, false, std::move(names), first);
  } else if constexpr (std::is_constructible_v<R, Params, Buckets, Pg, std::vector<bool>, int64_t, bool, bool, Names, int64_t, bool, bool>) {
    return std::make_unique<R>(std::move(params), std::move(buckets), std::move(pg), std::move(sparse), cap, findUnused, false, std::move(names), first, false, false);
  } else {
    return std::make_unique<R>(std::move(params), std::move(buckets), std::move(pg), std::move(sparse), cap, findUnused, false, std::move(names), first, false, false,
                               std::vector<int64_t>{});
  }
}

struct ReducerBox {
  std::unique_ptr<OpenReducer> r;
  std::string where;
  std::vector<std::string> names;
};

static const napi_type_tag kReducerTag = {0x3d7a9c21e84f4b06ULL, 0xa51f02c6b39d4e87ULL};

static ReducerBox* ReducerFrom(const Napi::Value& v) { return Unwrap<ReducerBox>(v, kReducerTag, "reducer", "disposed"); }

static void DeleteReducer(ReducerBox* b) {
  try {
    delete b;  // ~Reducer removes its hooks from the gradient accumulators
  } catch (...) {
  }
}

// createReducer(group, params[], names[], {bucketBytes, firstBucketBytes, findUnusedParameters}) -> reducer.
// The parameters are held as they are (the same TensorImpl as the JS tensors): leaves that require grad,
// each once. Checks with the other ranks that every rank passed the same shapes (a collective).
IB_FN(CreateReducer) {
  Group* g = GroupFrom(info[0]);
  auto params = TensorList(info[1]);
  auto namesArr = info[2].As<Napi::Array>();
  auto o = info[3].As<Napi::Object>();
  const int64_t cap = static_cast<int64_t>(o.Get("bucketBytes").As<Napi::Number>().DoubleValue());
  const int64_t first = static_cast<int64_t>(o.Get("firstBucketBytes").As<Napi::Number>().DoubleValue());
  const bool findUnused = o.Get("findUnusedParameters").ToBoolean();
  auto box = std::make_unique<ReducerBox>();
  box->where = g->where;
  std::unordered_map<size_t, std::string> names;
  std::unordered_set<const void*> seen;
  for (size_t i = 0; i < params.size(); i++) {
    box->names.push_back(i < namesArr.Length() ? namesArr.Get(i).ToString().Utf8Value() : "#" + std::to_string(i));
    names[i] = box->names[i];
    const auto& p = params[i];
    const std::string what = "c10d reducer: parameter " + box->names[i];
    if (!p.requires_grad() || !p.is_leaf()) throw Napi::TypeError::New(info.Env(), what + " is not a leaf tensor that requires grad");
    if (p.is_sparse()) throw Napi::TypeError::New(info.Env(), what + " is sparse");
    if (!seen.insert(p.unsafeGetTensorImpl()).second) throw Napi::TypeError::New(info.Env(), what + " is passed twice");
  }
  if (params.empty()) throw Napi::TypeError::New(info.Env(), "c10d reducer: no parameters");
  if (cap < 1 || first < 1) throw Napi::RangeError::New(info.Env(), "c10d reducer: bucket sizes must be positive");
  return GroupGuard(info, g->where, [&]() -> Napi::Value {
    c10d::verify_params_across_processes(g->pg, params, c10::nullopt);
    const std::vector<bool> sparse(params.size(), false);
    std::vector<std::vector<size_t>> buckets;
    std::vector<size_t> limits;
    std::tie(buckets, limits) = c10d::compute_bucket_assignment_by_size(params, {static_cast<size_t>(first), static_cast<size_t>(cap)}, sparse);
    std::reverse(buckets.begin(), buckets.end());
    std::reverse(limits.begin(), limits.end());
    box->r = MakeReducer<OpenReducer>(params, std::move(buckets), std::move(limits), g->pg, sparse, cap, findUnused, std::move(names), first);
    box->r->keepBuckets();
    box->r->set_ddp_runtime_logging_sample_rate(1);
    Napi::Object handle = Napi::Object::New(info.Env());
    napi_type_tag_object(info.Env(), handle, &kReducerTag);
    napi_wrap(info.Env(), handle, box.release(), [](napi_env, void* p, void*) { DeleteReducer(static_cast<ReducerBox*>(p)); }, nullptr, nullptr);
    return handle;
  }, true);
}

// reducerBackward(reducer, loss, sync): loss.backward(); with sync the gradients come out averaged over
// the ranks (all-reduced bucket by bucket during the pass), without it they only add up locally.
IB_FN(ReducerBackward) {
  ReducerBox* b = ReducerFrom(info[0]);
  const at::Tensor& loss = NativeTensor::From(info[1], "loss");
  const bool sync = info[2].ToBoolean();
  return GroupGuard(info, b->where, [&]() -> Napi::Value {
    OpenReducer& r = *b->r;
    if (sync) {
      r.prepare_for_forward();
      r.prepare_for_backward({loss});
    }
    torch::autograd::backward({loss});
    if (sync && r.awaitingHooks()) {
      // Some bucket never filled, so no all-reduce waits for it and param.grad was not averaged.
      std::string which;
      for (size_t i = 0; i < r.numBuckets(); i++) {
        if (r.bucketPending(i) == 0) continue;
        for (size_t v : r.bucketParams(i)) which += (which.empty() ? "" : ", ") + b->names[v];
      }
      throw std::runtime_error("the backward pass did not reach every parameter of the reducer (among: " + which +
                               "); with findUnusedParameters off every parameter must take part in every synced backward");
    }
    return info.Env().Undefined();
  }, sync);
}

// reducerInfo(reducer) -> {buckets: [{bytes, params: index[]}], iterations, timeline?}: the buckets in the
// order they are reduced, and the last synced backward's timeline from the Reducer's timer, in ns since
// prepare_for_backward: commStart (first bucket's all-reduce launched), computeEnd (backward done),
// commEnd (averages written), gradReady[i] (parameter i's gradient marked ready).
IB_FN(ReducerInfo) {
  ReducerBox* b = ReducerFrom(info[0]);
  const OpenReducer& r = *b->r;
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
  auto buckets = Napi::Array::New(env, r.numBuckets());
  for (size_t i = 0; i < r.numBuckets(); i++) {
    auto bk = Napi::Object::New(env);
    bk.Set("bytes", Napi::Number::New(env, static_cast<double>(r.bucketBytes(i))));
    const auto& vs = r.bucketParams(i);
    auto ps = Napi::Array::New(env, vs.size());
    for (size_t j = 0; j < vs.size(); j++) ps.Set(j, Napi::Number::New(env, static_cast<double>(vs[j])));
    bk.Set("params", ps);
    buckets.Set(i, bk);
  }
  out.Set("buckets", buckets);
  using E = c10d::Timer::Event;
  auto start = r.at(E::kBackwardComputeStart);
  auto comm = r.at(E::kBackwardCommStart), end = r.at(E::kBackwardComputeEnd), done = r.at(E::kBackwardCommEnd);
  if (start && comm && end && done && *done >= *start) {
    auto t = Napi::Object::New(env);
    t.Set("commStart", Napi::Number::New(env, static_cast<double>(*comm - *start)));
    t.Set("computeEnd", Napi::Number::New(env, static_cast<double>(*end - *start)));
    t.Set("commEnd", Napi::Number::New(env, static_cast<double>(*done - *start)));
    const auto stats = r.get_backward_stats();
    auto ready = Napi::Array::New(env, stats.size());
    for (size_t i = 0; i < stats.size(); i++) ready.Set(i, Napi::Number::New(env, static_cast<double>(stats[i])));
    t.Set("gradReady", ready);
    out.Set("timeline", t);
  }
  return out;
}

// disposeReducer(reducer): removes its hooks and frees its buckets now.
IB_FN(DisposeReducer) {
  void* p = nullptr;
  ReducerFrom(info[0]);
  napi_remove_wrap(info.Env(), info[0], &p);
  DeleteReducer(static_cast<ReducerBox*>(p));
  return info.Env().Undefined();
}

static Napi::Value Backends(Napi::Env env) {
  auto a = Napi::Array::New(env);
  a.Set(0u, "gloo");
#ifdef USE_C10D_NCCL
  a.Set(1u, "nccl");
#endif
  return a;
}

void InitC10d(Napi::Env env, Napi::Object exports) {
  exports.Set("c10dBackends", Backends(env));
  exports.Set("createGroup", Napi::Function::New(env, CreateGroup, "createGroup"));
  exports.Set("allReduce", Napi::Function::New(env, AllReduce, "allReduce"));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast, "broadcast"));
  exports.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  exports.Set("destroyGroup", Napi::Function::New(env, DestroyGroup, "destroyGroup"));
  exports.Set("createReducer", Napi::Function::New(env, CreateReducer, "createReducer"));
  exports.Set("reducerBackward", Napi::Function::New(env, ReducerBackward, "reducerBackward"));
  exports.Set("reducerInfo", Napi::Function::New(env, ReducerInfo, "reducerInfo"));
  exports.Set("disposeReducer", Napi::Function::New(env, DisposeReducer, "disposeReducer"));
}

#else

void InitC10d(Napi::Env env, Napi::Object exports) { exports.Set("c10dBackends", Napi::Array::New(env)); }

#endif

}  // namespace ib
