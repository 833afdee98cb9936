// The frozen KL reference policy (k3 KL to the stage's initial weights, learner/grpo.h).
//
// Resident: a full copy of the initial policy on its device. Offloaded: embeddings, final norm
// and lm_head stay on the device; every decoder layer's weights live in host memory (pinned
// when the device is a GPU) and are copied in just before the layer runs and released right
// after (PolicyImpl::LayerStreamer), so the device holds one layer of the reference at a time
// (0.5 GB instead of 15 GB for a 7B model in bf16) at the cost of one host-to-device copy of the
// decoder per reference forward. Results are identical to the resident copy.
//
// The reference is evaluated without gradients; thread-compatible like any PolicyImpl.
#ifndef ENVTUNE_LEARNER_REFERENCE_H_
#define ENVTUNE_LEARNER_REFERENCE_H_

#include <memory>

#include "absl/status/statusor.h"

namespace envtune {

class PolicyImpl;

// A frozen copy of `initial`'s current weights (eval mode, no gradients).
absl::StatusOr<std::shared_ptr<PolicyImpl>> MakeReference(PolicyImpl& initial, bool offload);

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_REFERENCE_H_
