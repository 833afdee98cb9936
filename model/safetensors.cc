#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include <ATen/Functions.h>
#include <ATen/ops/from_blob.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

using json = nlohmann::json;

struct DtypeRow {
  const char* name;
  at::ScalarType type;
  int64_t size;
};
constexpr DtypeRow kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4},  {"F16", at::kHalf, 2},
    {"BF16", at::kBFloat16, 2}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},  {"I8", at::kChar, 1},   {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

const DtypeRow* FindDtype(const std::string& name) {
  for (const auto& row : kDtypes) {
    if (name == row.name) return &row;
  }
  return nullptr;
}
const DtypeRow* FindDtype(at::ScalarType t) {
  for (const auto& row : kDtypes) {
    if (t == row.type) return &row;
  }
  return nullptr;
}

// A read-only (copy-on-write) mapping of a whole file.
class Mapping {
 public:
  ~Mapping() {
    if (data_ != nullptr && data_ != MAP_FAILED) munmap(data_, size_);
  }
  static absl::StatusOr<std::shared_ptr<Mapping>> Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
    struct stat st;
    if (fstat(fd, &st) != 0) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot stat ", path));
    }
    auto m = std::shared_ptr<Mapping>(new Mapping());
    m->size_ = static_cast<size_t>(st.st_size);
    if (m->size_ > 0) {
      m->data_ = mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (m->data_ == MAP_FAILED) {
        ::close(fd);
        return absl::InternalError(absl::StrCat("cannot mmap ", path, ": ", strerror(errno)));
      }
    }
    ::close(fd);
    return m;
  }
  uint8_t* data() const { return static_cast<uint8_t*>(data_); }
  size_t size() const { return size_; }

 private:
  Mapping() = default;
  void* data_ = nullptr;
  size_t size_ = 0;
};

absl::Status Corrupt(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("safetensors file ", path, ": ", what));
}

}  // namespace

absl::StatusOr<TensorMap> ReadSafetensors(const std::string& path) {
  auto mapping_or = Mapping::Open(path);
  if (!mapping_or.ok()) return mapping_or.status();
  std::shared_ptr<Mapping> mapping = *std::move(mapping_or);
  const size_t file_size = mapping->size();
  if (file_size < 8) return Corrupt(path, "shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | mapping->data()[i];
  if (header_len > file_size - 8 || header_len > (uint64_t{100} << 20)) {
    return Corrupt(path, absl::StrCat("header length ", header_len, " exceeds the file size ",
                                      file_size));
  }
  const char* header_begin = reinterpret_cast<const char*>(mapping->data() + 8);
  json header = json::parse(header_begin, header_begin + header_len, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return Corrupt(path, "header is not a JSON object");
  }
  const size_t data_begin = 8 + header_len;
  const uint64_t data_size = file_size - data_begin;
  uint8_t* base = mapping->data() + data_begin;

  TensorMap out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) return Corrupt(path, "__metadata__ is not an object");
      continue;
    }
    const json& info = it.value();
    auto bad = [&](absl::string_view what) {
      return Corrupt(path, absl::StrCat("tensor \"", name, "\": ", what));
    };
    if (!info.is_object()) return bad("entry is not an object");
    auto dt = info.find("dtype");
    auto shape_it = info.find("shape");
    auto offs = info.find("data_offsets");
    if (dt == info.end() || !dt->is_string()) return bad("missing dtype");
    const DtypeRow* row = FindDtype(dt->get<std::string>());
    if (row == nullptr) return bad(absl::StrCat("unsupported dtype ", dt->dump()));
    if (shape_it == info.end() || !shape_it->is_array()) return bad("missing shape");
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& d : *shape_it) {
      if (!d.is_number_unsigned() && !d.is_number_integer()) return bad("shape is not integers");
      int64_t v = d.get<int64_t>();
      if (v < 0 || v > (int64_t{1} << 40)) return bad("shape dimension out of range");
      shape.push_back(v);
      // Checked before it can wrap: [2^40, 2^40] once came out as 0 elements.
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(v), &numel) ||
          numel > (uint64_t{1} << 50)) {
        return bad("shape too large");
      }
    }
    if (offs == info.end() || !offs->is_array() || offs->size() != 2 ||
        !(*offs)[0].is_number_unsigned() || !(*offs)[1].is_number_unsigned()) {
      return bad("data_offsets must be [begin, end]");
    }
    const uint64_t b = (*offs)[0].get<uint64_t>();
    const uint64_t e = (*offs)[1].get<uint64_t>();
    if (b > e || e > data_size) {
      return bad(absl::StrCat("data_offsets [", b, ", ", e, "] outside the data area of ",
                              data_size, " bytes"));
    }
    if (e - b != numel * static_cast<uint64_t>(row->size)) {
      return bad(absl::StrCat("data_offsets span ", e - b, " bytes but shape and dtype need ",
                              numel * row->size));
    }
    ranges.emplace_back(b, e);
    at::Tensor t;
    uint8_t* ptr = base + b;
    auto options = at::TensorOptions().dtype(row->type);
    if (reinterpret_cast<uintptr_t>(ptr) % row->size == 0 || numel == 0) {
      std::shared_ptr<Mapping> keep = mapping;
      t = at::from_blob(ptr, shape, [keep](void*) mutable { keep.reset(); }, options);
    } else {
      t = at::empty(shape, options);
      std::memcpy(t.data_ptr(), ptr, e - b);
    }
    out.emplace(name, std::move(t));
  }
  // Offsets must tile the data area without overlap (what the reference reader enforces).
  std::sort(ranges.begin(), ranges.end());
  uint64_t cursor = 0;
  for (const auto& [b, e] : ranges) {
    if (b != cursor) return Corrupt(path, absl::StrCat("tensor data overlaps or leaves a gap at byte ", b));
    cursor = e;
  }
  if (cursor != data_size) {
    return Corrupt(path, absl::StrCat("data area is ", data_size, " bytes but tensors cover ",
                                      cursor));
  }
  return out;
}

absl::StatusOr<TensorMap> ReadSafetensorsDir(const std::string& dir) {
  const std::string index_path = dir + "/model.safetensors.index.json";
  auto index_text = ReadFileToString(index_path);
  if (!index_text.ok()) return ReadSafetensors(dir + "/model.safetensors");
  json index = json::parse(*index_text, nullptr, false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
      !index["weight_map"].is_object()) {
    return absl::DataLossError(absl::StrCat(index_path, ": no weight_map object"));
  }
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it->is_string()) {
      return absl::DataLossError(absl::StrCat(index_path, ": weight_map[\"", it.key(),
                                              "\"] is not a file name"));
    }
    const std::string shard = it->get<std::string>();
    if (shard.find('/') != std::string::npos || shard == "." || shard == "..") {
      return absl::DataLossError(absl::StrCat(index_path, ": bad shard name \"", shard, "\""));
    }
    by_shard[shard].push_back(it.key());
  }
  TensorMap out;
  for (const auto& [shard, names] : by_shard) {
    auto tensors = ReadSafetensors(dir + "/" + shard);
    if (!tensors.ok()) return tensors.status();
    for (const std::string& name : names) {
      auto t = tensors->find(name);
      if (t == tensors->end()) {
        return absl::DataLossError(absl::StrCat(index_path, ": \"", name, "\" is not in ", shard));
      }
      out.emplace(name, t->second);
    }
  }
  return out;
}

absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::vector<std::pair<std::string, at::Tensor>> sorted;
  sorted.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " undefined"));
    if (FindDtype(t.scalar_type()) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", name, ": dtype ",
                                                     c10::toString(t.scalar_type()),
                                                     " has no safetensors code"));
    }
    sorted.emplace_back(name, t.detach().to(at::kCPU).contiguous());
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].first == sorted[i - 1].first) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name ", sorted[i].first));
    }
  }
  // Compact JSON with __metadata__ first, then tensors in name order (nlohmann's ordered
  // dump cannot guarantee the position of "__metadata__", so the text is assembled here).
  std::string header = R"({"__metadata__":{"format":"pt"})";
  uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    json shape = json::array();
    for (int64_t d : t.sizes()) shape.push_back(d);
    absl::StrAppend(&header, ",", json(name).dump(), ":{\"dtype\":\"",
                    FindDtype(t.scalar_type())->name, "\",\"shape\":", shape.dump(),
                    ",\"data_offsets\":[", offset, ",", offset + nbytes, "]}");
    offset += nbytes;
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';

  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot write ", tmp));
    uint8_t len[8];
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    f.write(reinterpret_cast<const char*>(len), 8);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& [name, t] : sorted) {
      f.write(static_cast<const char*>(t.data_ptr()),
              static_cast<std::streamsize>(t.numel() * t.element_size()));
    }
    f.flush();
    if (!f) return absl::DataLossError(absl::StrCat("short write to ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status WriteSafetensorsDir(const std::string& dir,
                                 const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                 int64_t max_shard_bytes) {
  using Shard = std::vector<std::pair<std::string, at::Tensor>>;
  std::vector<Shard> shards;
  Shard current;
  int64_t current_size = 0;
  int64_t total_size = 0;
  for (const auto& entry : tensors) {
    const int64_t size = entry.second.numel() * entry.second.element_size();
    total_size += size;
    if (size > max_shard_bytes) {
      shards.push_back({entry});
      continue;
    }
    if (current_size + size > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_size = 0;
    }
    current.push_back(entry);
    current_size += size;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));
  if (shards.size() == 1) return WriteSafetensors(dir + "/model.safetensors", shards[0]);

  json weight_map = json::object();
  const size_t n = shards.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string file = absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, n);
    if (auto st = WriteSafetensors(dir + "/" + file, shards[i]); !st.ok()) return st;
    for (const auto& [name, t] : shards[i]) weight_map[name] = file;
  }
  json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  std::ofstream f(dir + "/model.safetensors.index.json", std::ios::trunc);
  if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot write index in ", dir));
  f << index.dump(2) << "\n";
  if (!f) return absl::DataLossError("short write of model.safetensors.index.json");
  return absl::OkStatus();
}

}  // namespace envtune
