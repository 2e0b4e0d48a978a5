// Debian's libtorch-dev ships c10d/reducer.hpp but not the distributed-autograd (RPC) headers it
// includes. reducer.hpp needs only two names from this one: ContextPtr, a shared_ptr held inside
// Reducer (its size does not depend on the pointee), and DistAutogradContext::GradCallback, which
// it checks against its own callback type. Both are declared here as libtorch declares them; the
// binding never uses distributed autograd. Used only where libtorch's own header is missing
// (scripts/libtorch.mjs adds this directory to the include path then).
#pragma once
#include <ATen/core/Tensor.h>
#include <functional>
#include <memory>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};

using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
