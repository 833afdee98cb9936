#include "model/weights_io.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <set>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/config.h"
#include "model/device.h"
#include "model/qwen2.h"
#include "model/safetensors.h"

namespace envtune {
namespace {

struct DtypeRow {
  const char* name;
  c10::ScalarType type;
  uint64_t element_bytes;
};
constexpr DtypeRow kDtypes[] = {{"F32", c10::kFloat, 4}, {"BF16", c10::kBFloat16, 2}};

const DtypeRow* FindDtype(std::string_view name) {
  for (const DtypeRow& row : kDtypes) {
    if (name == row.name) return &row;
  }
  return nullptr;
}

bool SameShapes(const ModelConfig& a, const ModelConfig& b) {
  return a.model_type == b.model_type && a.vocab_size == b.vocab_size &&
         a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size &&
         a.num_hidden_layers == b.num_hidden_layers &&
         a.num_attention_heads == b.num_attention_heads &&
         a.num_key_value_heads == b.num_key_value_heads && a.head_dim == b.head_dim &&
         a.tie_word_embeddings == b.tie_word_embeddings && a.qkv_bias == b.qkv_bias &&
         a.o_bias == b.o_bias && a.mlp_bias == b.mlp_bias && a.rope_theta == b.rope_theta &&
         a.rms_norm_eps == b.rms_norm_eps && a.rope_scaling.type == b.rope_scaling.type &&
         a.rope_scaling.factor == b.rope_scaling.factor;
}

// One empty host tensor per header entry (pinned when `pinned`).
std::vector<at::Tensor> AllocateForHeader(const v1::WeightsHeader& header, bool pinned) {
  std::vector<at::Tensor> out;
  out.reserve(header.tensors_size());
  for (const v1::TensorHeader& t : header.tensors()) {
    std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
    out.push_back(at::empty(shape, at::TensorOptions()
                                       .dtype(FindDtype(t.dtype())->type)
                                       .pinned_memory(pinned)));
  }
  return out;
}

TensorMap MapTensors(const v1::WeightsHeader& header, const std::vector<at::Tensor>& tensors) {
  TensorMap out;
  for (int i = 0; i < header.tensors_size(); ++i) out.emplace(header.tensors(i).name(), tensors[i]);
  return out;
}

// Copies `data` (the tensors' bytes in header order) into `tensors`, starting at byte `offset`
// of the stream; advances `index`/`within` (the tensor and the byte inside it written next).
void WriteStream(std::string_view data, std::vector<at::Tensor>& tensors, size_t& index,
                 uint64_t& within) {
  while (!data.empty()) {
    at::Tensor& t = tensors[index];
    const uint64_t size = t.nbytes();
    const uint64_t take = std::min<uint64_t>(size - within, data.size());
    if (take > 0) std::memcpy(static_cast<char*>(t.data_ptr()) + within, data.data(), take);
    data.remove_prefix(take);
    within += take;
    if (within == size) {
      ++index;
      within = 0;
    }
  }
}

absl::StatusOr<std::shared_ptr<PolicyImpl>> BuildFromTensors(const v1::WeightsHeader& header,
                                                             const TensorMap& tensors,
                                                             const WeightsLoadOptions& options) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(header.config_json());
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights: config_json: ", config.status().message()));
  }
  c10::ScalarType dtype = c10::kFloat;
  if (!options.dtype.empty()) {
    absl::StatusOr<c10::ScalarType> named = DtypeFromName(options.dtype);
    if (!named.ok()) return named.status();
    dtype = *named;
  } else {
    bool all_bf16 = header.tensors_size() > 0;
    for (const auto& t : header.tensors()) all_bf16 = all_bf16 && t.dtype() == "BF16";
    dtype = all_bf16 ? c10::kBFloat16 : c10::kFloat;
  }
  absl::StatusOr<c10::Device> device = ResolveDevice(options.device);
  if (!device.ok()) return device.status();
  try {
    auto policy = std::make_shared<PolicyImpl>(PolicyOptions(*config).dtype(dtype).device(*device));
    if (auto st = policy->LoadStateDict(tensors); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat("weights: ", st.message()));
    }
    policy->eval();
    return policy;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("building policy from weights: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("building policy from weights: ", e.what()));
  }
}

absl::Status RefreshFromTensors(PolicyImpl& policy, const v1::WeightsHeader& header,
                                const TensorMap& tensors) {
  if (!SameArchitecture(policy, header)) {
    return absl::FailedPreconditionError(
        "weights: the header's config describes another architecture; build a new policy");
  }
  try {
    if (auto st = policy.LoadStateDict(tensors); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat("weights: ", st.message()));
    }
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("refreshing policy: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("refreshing policy: ", e.what()));
  }
}

}  // namespace

absl::Status ValidateWeightsHeader(const v1::WeightsHeader& header, uint64_t data_size) {
  std::set<std::string> names;
  uint64_t sum = 0;
  for (const v1::TensorHeader& t : header.tensors()) {
    const DtypeRow* row = FindDtype(t.dtype());
    if (row == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights: tensor '", t.name(), "' has unknown dtype '", t.dtype(), "'"));
    }
    if (t.name().empty() || !names.insert(t.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights: empty or duplicate tensor name '", t.name(), "'"));
    }
    uint64_t elements = 1;
    for (int64_t d : t.shape()) {
      if (d < 0 || (d > 0 && elements > (uint64_t{1} << 40) / static_cast<uint64_t>(d))) {
        return absl::InvalidArgumentError(
            absl::StrCat("weights: tensor '", t.name(), "' has a bad shape"));
      }
      elements *= static_cast<uint64_t>(d);
    }
    if (elements * row->element_bytes != t.byte_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weights: tensor '", t.name(), "' byte_size ", t.byte_size(), " but its shape and ",
          t.dtype(), " need ", elements * row->element_bytes));
    }
    sum += t.byte_size();
  }
  if (sum != header.total_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat("weights: tensors add up to ", sum,
                                                   " bytes but total_bytes is ",
                                                   header.total_bytes()));
  }
  if (sum != data_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights: header describes ", sum, " bytes but ", data_size, " arrived"));
  }
  return absl::OkStatus();
}

namespace {

// The host tensors behind a WeightBuffers.
struct SnapshotStorage {
  std::vector<at::Tensor> tensors;
};

// Copies `policy`'s parameters into `reuse`'s tensors when it is given (the same layout: checked
// tensor by tensor, else fresh ones are allocated), else into new host tensors.
absl::StatusOr<WeightBuffers> Snapshot(PolicyImpl& policy, const std::string& dtype,
                                       bool async_device_copy,
                                       std::shared_ptr<SnapshotStorage> reuse) {
  const DtypeRow* row = nullptr;
  if (dtype.empty()) {
    row = FindDtype(policy.dtype() == c10::kFloat ? "F32" : "BF16");
  } else {
    row = FindDtype(dtype);
  }
  if (row == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights: dtype must be F32 or BF16, got '", dtype, "'"));
  }
  try {
    at::NoGradGuard no_grad;
    WeightBuffers out;
    ModelConfig config = policy.config();
    config.torch_dtype = row->type == c10::kFloat ? "float32" : "bfloat16";
    out.header.set_config_json(SerializeModelConfig(config));
    std::vector<std::pair<std::string, at::Tensor>> params = policy.StateDict();
    auto storage = std::make_shared<SnapshotStorage>();
    if (reuse != nullptr && reuse->tensors.size() == params.size()) {
      storage = std::move(reuse);
    }
    storage->tensors.resize(params.size());
    uint64_t total = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor src = params[i].second.detach();
      const bool pinned = async_device_copy && src.is_cuda();
      // On the device, convert first (half the bytes cross the bus for BF16).
      if (!src.is_cpu() && src.scalar_type() != row->type) src = src.to(row->type);
      at::Tensor& t = storage->tensors[i];
      if (!t.defined() || t.sizes() != src.sizes() || t.scalar_type() != row->type ||
          t.is_pinned() != pinned) {
        t = at::empty(src.sizes(), at::TensorOptions().dtype(row->type).pinned_memory(pinned));
      }
      if (src.is_cpu() && src.is_contiguous() && src.scalar_type() == row->type) {
        // One sequential copy on this thread (at::copy_ splits it over the intra-op pool).
        std::memcpy(t.data_ptr(), src.data_ptr(), t.nbytes());
      } else {
        t.copy_(src, /*non_blocking=*/pinned);
      }
      v1::TensorHeader* th = out.header.add_tensors();
      th->set_name(params[i].first);
      th->set_dtype(row->name);
      for (int64_t d : t.sizes()) th->add_shape(d);
      th->set_byte_size(t.nbytes());
      total += t.nbytes();
    }
    out.header.set_total_bytes(total);
    for (const at::Tensor& t : storage->tensors) {
      out.tensors.emplace_back(static_cast<const char*>(t.data_ptr()), t.nbytes());
    }
    out.storage = std::move(storage);
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("snapshotting weights: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("snapshotting weights: ", e.what()));
  }
}

}  // namespace

absl::StatusOr<WeightBuffers> SnapshotPolicyWeights(PolicyImpl& policy, const std::string& dtype,
                                                    bool async_device_copy) {
  return Snapshot(policy, dtype, async_device_copy, nullptr);
}

struct PolicySnapshotter::Impl {
  std::string dtype;
  bool async = false;
  // Storages handed out, newest last (at most two: the published one and a spare).
  std::vector<std::shared_ptr<SnapshotStorage>> recent;
  int64_t reused = 0;
};

PolicySnapshotter::PolicySnapshotter(std::string dtype, bool async_device_copy)
    : impl_(std::make_unique<Impl>()) {
  impl_->dtype = std::move(dtype);
  impl_->async = async_device_copy;
}
PolicySnapshotter::~PolicySnapshotter() = default;

int64_t PolicySnapshotter::reused() const { return impl_->reused; }

absl::StatusOr<WeightBuffers> PolicySnapshotter::Snapshot(PolicyImpl& policy) {
  Impl& s = *impl_;
  // A storage only this snapshotter holds can be overwritten: nobody can take a new reference
  // to it (every other holder has released it).
  std::shared_ptr<SnapshotStorage> reuse;
  for (auto it = s.recent.begin(); it != s.recent.end(); ++it) {
    if (it->use_count() == 1) {
      reuse = std::move(*it);
      s.recent.erase(it);
      break;
    }
  }
  const bool recycled = reuse != nullptr;
  absl::StatusOr<WeightBuffers> out = envtune::Snapshot(policy, s.dtype, s.async, std::move(reuse));
  if (!out.ok()) return out;
  if (recycled) ++s.reused;
  s.recent.push_back(std::static_pointer_cast<SnapshotStorage>(
      std::const_pointer_cast<void>(out->storage)));
  while (s.recent.size() > 2) s.recent.erase(s.recent.begin());
  return out;
}

absl::StatusOr<PolicyWeights> SerializePolicyWeights(PolicyImpl& policy, const std::string& dtype) {
  absl::StatusOr<WeightBuffers> buffers = SnapshotPolicyWeights(policy, dtype);
  if (!buffers.ok()) return buffers.status();
  PolicyWeights out;
  out.header = std::move(buffers->header);
  out.data.reserve(out.header.total_bytes());
  for (std::string_view t : buffers->tensors) out.data.append(t);
  return out;
}

bool SameArchitecture(const PolicyImpl& policy, const v1::WeightsHeader& header) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(header.config_json());
  return config.ok() && SameShapes(policy.config(), *config);
}

absl::StatusOr<std::shared_ptr<PolicyImpl>> BuildPolicyFromWeights(
    const v1::WeightsHeader& header, std::string_view data, const WeightsLoadOptions& options) {
  if (auto st = ValidateWeightsHeader(header, data.size()); !st.ok()) return st;
  try {
    std::vector<at::Tensor> tensors = AllocateForHeader(header, /*pinned=*/false);
    size_t index = 0;
    uint64_t within = 0;
    WriteStream(data, tensors, index, within);
    return BuildFromTensors(header, MapTensors(header, tensors), options);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("building policy from weights: ", e.what_without_backtrace()));
  }
}

absl::Status RefreshPolicyFromWeights(PolicyImpl& policy, const v1::WeightsHeader& header,
                                      std::string_view data) {
  if (!SameArchitecture(policy, header)) {
    return absl::FailedPreconditionError(
        "weights: the header's config describes another architecture; build a new policy");
  }
  if (auto st = ValidateWeightsHeader(header, data.size()); !st.ok()) return st;
  try {
    std::vector<at::Tensor> tensors = AllocateForHeader(header, /*pinned=*/false);
    size_t index = 0;
    uint64_t within = 0;
    WriteStream(data, tensors, index, within);
    return RefreshFromTensors(policy, header, MapTensors(header, tensors));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("refreshing policy: ", e.what_without_backtrace()));
  }
}

struct WeightsReceiver::Impl {
  v1::WeightsHeader header;
  WeightsLoadOptions options;
  bool pinned = false;
  std::vector<at::Tensor> tensors;
  uint64_t received = 0;
  size_t index = 0;     // the tensor the next byte goes to
  uint64_t within = 0;  // and its offset there
};

WeightsReceiver::WeightsReceiver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WeightsReceiver::~WeightsReceiver() = default;

absl::StatusOr<std::unique_ptr<WeightsReceiver>> WeightsReceiver::Create(
    v1::WeightsHeader header, WeightsLoadOptions options) {
  absl::StatusOr<c10::Device> device = ResolveDevice(options.device);
  if (!device.ok()) return device.status();
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->pinned = device->is_cuda();
  std::unique_ptr<WeightsReceiver> receiver(new WeightsReceiver(std::move(impl)));
  if (absl::Status st = receiver->Reset(std::move(header)); !st.ok()) return st;
  return receiver;
}

absl::Status WeightsReceiver::Reset(v1::WeightsHeader header) {
  if (auto st = ValidateWeightsHeader(header, header.total_bytes()); !st.ok()) return st;
  Impl& r = *impl_;
  bool same = header.tensors_size() == r.header.tensors_size() &&
              r.tensors.size() == static_cast<size_t>(header.tensors_size());
  for (int i = 0; same && i < header.tensors_size(); ++i) {
    const v1::TensorHeader &a = header.tensors(i), &b = r.header.tensors(i);
    same = a.name() == b.name() && a.dtype() == b.dtype() &&
           std::equal(a.shape().begin(), a.shape().end(), b.shape().begin(), b.shape().end());
  }
  try {
    if (!same) {
      r.tensors.clear();  // free the old buffers before allocating the new ones
      r.tensors = AllocateForHeader(header, r.pinned);
    }
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "weights: allocating ", header.total_bytes(), " bytes of host buffers for ",
        header.tensors_size(), " tensors: ", e.what_without_backtrace()));
  }
  r.header = std::move(header);
  r.received = 0;
  r.index = 0;
  r.within = 0;
  return absl::OkStatus();
}

absl::Status WeightsReceiver::Append(std::string_view bytes) {
  Impl& r = *impl_;
  if (bytes.size() > r.header.total_bytes() - r.received) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights: ", r.received + bytes.size(), " bytes arrived, more than the header's ",
        r.header.total_bytes()));
  }
  WriteStream(bytes, r.tensors, r.index, r.within);
  r.received += bytes.size();
  return absl::OkStatus();
}

uint64_t WeightsReceiver::received() const { return impl_->received; }
uint64_t WeightsReceiver::total() const { return impl_->header.total_bytes(); }
const v1::WeightsHeader& WeightsReceiver::header() const { return impl_->header; }
bool WeightsReceiver::pinned() const { return impl_->pinned; }

absl::StatusOr<std::shared_ptr<PolicyImpl>> WeightsReceiver::Build() const {
  if (received() != total()) {
    return absl::FailedPreconditionError(
        absl::StrCat("weights: ", received(), " of ", total(), " bytes received"));
  }
  return BuildFromTensors(impl_->header, MapTensors(impl_->header, impl_->tensors),
                          impl_->options);
}

absl::Status WeightsReceiver::Refresh(PolicyImpl& policy) const {
  if (received() != total()) {
    return absl::FailedPreconditionError(
        absl::StrCat("weights: ", received(), " of ", total(), " bytes received"));
  }
  return RefreshFromTensors(policy, impl_->header, MapTensors(impl_->header, impl_->tensors));
}

}  // namespace envtune
