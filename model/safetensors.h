// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
// 8-byte little-endian header length N, N bytes of JSON header
// {"__metadata__":{...}, name: {"dtype", "shape", "data_offsets":[begin,end]}, ...}, then the
// raw little-endian tensor bytes. Sharded checkpoints add model.safetensors.index.json
// ({"metadata":{"total_size"}, "weight_map":{name: shard file}}).
//
// Reading memory-maps each file; the returned tensors are torch::from_blob views over the
// mapping (copy-on-write private mapping: writing to a tensor never touches the file) and keep
// the mapping alive through their deleter, so the map may be dropped at any time. Tensors whose
// data is not aligned to their element size are copied instead.
// Thread safety: free functions; safe to call concurrently on different paths.
#ifndef ENVTUNE_MODEL_SAFETENSORS_H_
#define ENVTUNE_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <ATen/core/Tensor.h>

namespace envtune {

// Name -> tensor, iterated in name order.
using TensorMap = std::map<std::string, at::Tensor>;

// Reads one .safetensors file. Validates the header (JSON, dtypes, shapes, offsets inside the
// data area and not overlapping, data area fully covered). Errors name the file and tensor.
absl::StatusOr<TensorMap> ReadSafetensors(const std::string& path);

// Reads a checkpoint directory: <dir>/model.safetensors.index.json (sharded) if present, else
// <dir>/model.safetensors. Every weight_map entry must exist in its shard.
absl::StatusOr<TensorMap> ReadSafetensorsDir(const std::string& dir);

// Writes one file exactly in HF's layout: header {"__metadata__":{"format":"pt"}, tensors
// sorted by name}, compact JSON, space-padded to a multiple of 8 bytes. Tensors are written
// contiguous, on CPU, in their own dtype. The write goes to a temp file renamed into place.
absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors);

// Writes `tensors` (in the given order, e.g. named_parameters order) into <dir>. If their total
// size exceeds max_shard_bytes they are split like huggingface_hub's
// split_torch_state_dict_into_shards (greedy, in order) into model-0000i-of-0000n.safetensors
// plus model.safetensors.index.json; otherwise a single model.safetensors. Stale shard files
// of an earlier save are not removed.
absl::Status WriteSafetensorsDir(const std::string& dir,
                                 const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                 int64_t max_shard_bytes = int64_t{5} << 30);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_SAFETENSORS_H_
