#include "model/weights_io.h"

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

// The header's tensors as CPU tensors (copies of `data`, so alignment never matters).
absl::StatusOr<TensorMap> TensorsFromWeights(const v1::WeightsHeader& header,
                                             std::string_view data) {
  if (auto st = ValidateWeightsHeader(header, data.size()); !st.ok()) return st;
  TensorMap tensors;
  uint64_t offset = 0;
  for (const v1::TensorHeader& t : header.tensors()) {
    const DtypeRow* row = FindDtype(t.dtype());
    std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
    at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(row->type));
    if (t.byte_size() > 0) std::memcpy(tensor.data_ptr(), data.data() + offset, t.byte_size());
    offset += t.byte_size();
    tensors.emplace(t.name(), std::move(tensor));
  }
  return tensors;
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

absl::StatusOr<PolicyWeights> SerializePolicyWeights(PolicyImpl& policy, const std::string& dtype) {
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
    PolicyWeights out;
    ModelConfig config = policy.config();
    config.torch_dtype = row->type == c10::kFloat ? "float32" : "bfloat16";
    out.header.set_config_json(SerializeModelConfig(config));
    std::vector<at::Tensor> cpu;
    uint64_t total = 0;
    for (auto& [name, tensor] : policy.StateDict()) {
      at::Tensor t = tensor.detach().to(at::kCPU, row->type).contiguous();
      v1::TensorHeader* th = out.header.add_tensors();
      th->set_name(name);
      th->set_dtype(row->name);
      for (int64_t d : t.sizes()) th->add_shape(d);
      th->set_byte_size(t.nbytes());
      total += t.nbytes();
      cpu.push_back(std::move(t));
    }
    out.header.set_total_bytes(total);
    out.data.resize(total);
    uint64_t offset = 0;
    for (const at::Tensor& t : cpu) {
      if (t.nbytes() > 0) std::memcpy(out.data.data() + offset, t.data_ptr(), t.nbytes());
      offset += t.nbytes();
    }
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("serialising weights: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("serialising weights: ", e.what()));
  }
}

bool SameArchitecture(const PolicyImpl& policy, const v1::WeightsHeader& header) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(header.config_json());
  return config.ok() && SameShapes(policy.config(), *config);
}

absl::StatusOr<std::shared_ptr<PolicyImpl>> BuildPolicyFromWeights(
    const v1::WeightsHeader& header, std::string_view data, const WeightsLoadOptions& options) {
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
    absl::StatusOr<TensorMap> tensors = TensorsFromWeights(header, data);
    if (!tensors.ok()) return tensors.status();
    auto policy = std::make_shared<PolicyImpl>(PolicyOptions(*config).dtype(dtype).device(*device));
    if (auto st = policy->LoadStateDict(*tensors); !st.ok()) {
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

absl::Status RefreshPolicyFromWeights(PolicyImpl& policy, const v1::WeightsHeader& header,
                                      std::string_view data) {
  if (!SameArchitecture(policy, header)) {
    return absl::FailedPreconditionError(
        "weights: the header's config describes another architecture; build a new policy");
  }
  try {
    absl::StatusOr<TensorMap> tensors = TensorsFromWeights(header, data);
    if (!tensors.ok()) return tensors.status();
    if (auto st = policy.LoadStateDict(*tensors); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat("weights: ", st.message()));
    }
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("refreshing policy: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("refreshing policy: ", e.what()));
  }
}

}  // namespace envtune
