// PyTorch's c10d in the binding: a TCPStore for rendezvous (rank 0 hosts it) and a process group
// (Gloo on CPU; NCCL when the libtorch build has it) with in-place all-reduce, broadcast and barrier.
// Every blocking call is bounded by the group's timeout; failures (a peer gone, a timeout, a port in
// use) come back as JS errors prefixed with the rank, the world size and the master address.
// Compiled to stubs that say so when libtorch was built without c10d or Gloo's headers are missing.
#include "common.h"

#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <chrono>
#include <cstdlib>
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

static Group* GroupFrom(const Napi::Value& v) {
  bool ok = false;
  if (v.IsObject() && napi_check_object_type_tag(v.Env(), v, &kGroupTag, &ok) == napi_ok && ok) {
    void* p = nullptr;
    napi_unwrap(v.Env(), v, &p);
    if (p) return static_cast<Group*>(p);
    throw Napi::Error::New(v.Env(), "c10d: the process group was destroyed");
  }
  throw Napi::TypeError::New(v.Env(), "c10d: expected a process group");
}

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
}

#else

void InitC10d(Napi::Env env, Napi::Object exports) { exports.Set("c10dBackends", Napi::Array::New(env)); }

#endif

}  // namespace ib
