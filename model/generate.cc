#include "model/generate.h"

#include <algorithm>
#include <exception>
#include <limits>

#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "model/device.h"
#include "model/qwen2.h"
#include "model/score.h"

namespace envtune {
namespace {

absl::Status CheckInputs(const PolicyImpl& policy, const std::vector<std::vector<int64_t>>& prompts,
                         const GenerationOptions& o, const DetokenizeFn& detokenize) {
  const int64_t vocab = policy.config().vocab_size;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " is empty"));
    for (int64_t id : prompts[i]) {
      if (id < 0 || id >= vocab) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt ", i, " has token id ", id, " outside [0, ", vocab, ")"));
      }
    }
  }
  if (o.max_new_tokens < 0) return absl::InvalidArgumentError("max_new_tokens must be >= 0");
  if (o.do_sample && !(o.temperature > 0)) {
    return absl::InvalidArgumentError("temperature must be > 0 when sampling");
  }
  if (!(o.top_p > 0 && o.top_p <= 1)) return absl::InvalidArgumentError("top_p must be in (0, 1]");
  if (o.top_k < 0) return absl::InvalidArgumentError("top_k must be >= 0");
  if (!o.row_seeds.empty() && o.row_seeds.size() != prompts.size()) {
    return absl::InvalidArgumentError(absl::StrCat(o.row_seeds.size(), " row_seeds for ",
                                                   prompts.size(), " prompts"));
  }
  if (!o.stop_strings.empty() && !detokenize) {
    return absl::InvalidArgumentError("stop_strings need a detokenize callback");
  }
  for (const auto& s : o.stop_strings) {
    if (s.empty()) return absl::InvalidArgumentError("stop strings must be non-empty");
  }
  return absl::OkStatus();
}

// HF's TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper (in that order).
at::Tensor ProcessLogits(at::Tensor logits, const GenerationOptions& o) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (o.temperature != 1.0) logits = logits / o.temperature;
  const int64_t vocab = logits.size(-1);
  if (o.top_k > 0 && o.top_k < vocab) {
    at::Tensor kth = std::get<0>(logits.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);
    logits = logits.masked_fill(logits < kth, neg_inf);
  }
  if (o.top_p < 1.0) {
    auto [sorted, indices] = logits.sort(-1, /*descending=*/false);
    at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
    at::Tensor remove_sorted = cumulative <= (1.0 - o.top_p);
    remove_sorted.narrow(-1, vocab - 1, 1).fill_(false);
    at::Tensor remove = remove_sorted.scatter(-1, indices, remove_sorted);
    logits = logits.masked_fill(remove, neg_inf);
  }
  return logits;
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStopToken:
      return "stop_token";
    case FinishReason::kStopString:
      return "stop_string";
    case FinishReason::kLength:
      return "length";
  }
  return "unknown";
}

class SequenceCache {
 public:
  std::vector<int64_t> tokens;
  std::vector<at::Tensor> keys, values;  // per layer [kv_heads, tokens, head_dim]
};

int64_t SequenceCacheTokens(const SequenceCachePtr& cache) {
  return cache == nullptr ? 0 : static_cast<int64_t>(cache->tokens.size());
}

namespace {

// Tokens of `cache` usable for `prompt`: their common prefix, leaving the prompt's last token to
// be prefilled (its logits start generation); 0 if the cache does not fit this policy.
int64_t ReusableTokens(const SequenceCache* cache, const std::vector<int64_t>& prompt,
                       const PolicyImpl& policy) {
  if (cache == nullptr) return 0;
  const ModelConfig& c = policy.config();
  if (static_cast<int64_t>(cache->keys.size()) != c.num_hidden_layers || cache->keys.empty() ||
      !cache->keys[0].defined() || cache->keys[0].size(0) != c.num_key_value_heads || cache->keys[0].size(2) != c.head_dim ||
      cache->keys[0].scalar_type() != policy.dtype() ||
      !SameDevice(cache->keys[0].device(), policy.device())) {
    return 0;
  }
  const size_t limit = std::min(cache->tokens.size(), prompt.size() - 1);
  return std::mismatch(cache->tokens.begin(), cache->tokens.begin() + limit, prompt.begin()).first -
         cache->tokens.begin();
}

}  // namespace

int64_t KvBytesPerToken(const PolicyImpl& policy) {
  const ModelConfig& c = policy.config();
  return 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim *
         static_cast<int64_t>(c10::elementSize(policy.dtype()));
}

namespace {
constexpr char kKvLimitPayload[] = "type.envtune.dev/kv_limit";

absl::Status KvLimitError(std::string message) {
  absl::Status st = absl::ResourceExhaustedError(std::move(message));
  st.SetPayload(kKvLimitPayload, absl::Cord("1"));
  return st;
}

bool IsAllocationFailure(const c10::Error& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  const absl::string_view what = e.what_without_backtrace();
  return absl::StrContains(what, "out of memory") || absl::StrContains(what, "Out of Memory") ||
         absl::StrContains(what, "can't allocate memory") ||
         absl::StrContains(what, "not enough memory");
}

// The batch's keys/values: `cache` holds `rows` live rows of `alloc_rows` allocated ones (rows
// compacted away stay allocated until the next growth) and `capacity` positions.
struct GrowingCache {
  KVCache cache;
  int64_t alloc_rows = 0;
  int64_t bytes_per_token = 0;
  int64_t extracted_bytes = 0;  // copies of finished rows' caches made by this call
  int64_t Bytes() const { return alloc_rows * cache.capacity() * bytes_per_token; }
};

}  // namespace

bool IsKvLimitError(const absl::Status& status) {
  return absl::IsResourceExhausted(status) && status.GetPayload(kKvLimitPayload).has_value();
}

absl::StatusOr<DeviceMemory> PolicyDeviceMemory(const PolicyImpl& policy) {
  DeviceMemory out;
  try {
    for (const auto& p : policy.parameters()) out.parameter_bytes += p.nbytes();
    const c10::Device device = policy.device();
    if (device.is_cuda()) {
      const c10::DeviceIndex index = device.has_index() ? device.index() : c10::DeviceIndex(0);
      out.total_bytes = static_cast<int64_t>(at::accelerator::getMemoryInfo(index).second);
    } else {
      const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
      if (pages <= 0 || page <= 0) return absl::InternalError("cannot read the host's memory size");
      out.total_bytes = static_cast<int64_t>(pages) * page;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("reading the device's memory size: ", e.what_without_backtrace()));
  }
  return out;
}

absl::StatusOr<std::vector<GenerationResult>> Generate(
    PolicyImpl& policy, const std::vector<std::vector<int64_t>>& prompts,
    const GenerationOptions& options, const DetokenizeFn& detokenize,
    std::vector<SequenceCachePtr>* caches) {
  if (auto st = CheckInputs(policy, prompts, options, detokenize); !st.ok()) return st;
  if (caches != nullptr && caches->size() != prompts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("generate: ", caches->size(), " caches for ",
                                                   prompts.size(), " prompts"));
  }
  if (options.max_kv_bytes < 0) return absl::InvalidArgumentError("max_kv_bytes must be >= 0");
  std::vector<GenerationResult> results(prompts.size());
  if (prompts.empty() || options.max_new_tokens == 0) return results;
  size_t max_stop_len = 0;
  for (const auto& s : options.stop_strings) max_stop_len = std::max(max_stop_len, s.size());
  GrowingCache kv;
  kv.bytes_per_token = KvBytesPerToken(policy);
  auto describe = [&kv] {
    return absl::StrCat(kv.alloc_rows, " rows x ", kv.cache.capacity(), " positions x ",
                        kv.bytes_per_token, " bytes per token = ", kv.Bytes(),
                        " bytes, plus ", kv.extracted_bytes, " bytes of finished rows' caches");
  };
  auto fail = [&](absl::Status st) -> absl::Status {
    if (caches != nullptr) {
      for (SequenceCachePtr& c : *caches) c.reset();
    }
    return st;
  };
  try {
    at::NoGradGuard no_grad;
    const c10::Device device = policy.device();
    const int64_t B = static_cast<int64_t>(prompts.size());
    // Row b = [pad][reused prefix: reuse[b]] [pad][new prompt tokens] [generated ...]: the
    // reused block is P0 wide, the prefilled block T; padding is masked wherever it sits.
    std::vector<int64_t> reuse(B, 0);
    std::vector<SequenceCachePtr> new_caches;
    if (caches != nullptr) {
      new_caches.resize(B);
      for (int64_t b = 0; b < B; ++b) {
        reuse[b] = ReusableTokens((*caches)[b].get(), prompts[b], policy);
        results[b].reused_tokens = reuse[b];
      }
    }
    int64_t P0 = 0, T = 0;
    for (int64_t b = 0; b < B; ++b) {
      P0 = std::max(P0, reuse[b]);
      T = std::max<int64_t>(T, static_cast<int64_t>(prompts[b].size()) - reuse[b]);
    }
    const int64_t P = P0 + T;
    // Generated tokens the cache has room for; the last sampled token is never written.
    int64_t room = std::min(options.max_new_tokens, kKvBlockTokens);
    // Checks max_kv_bytes for `rows` rows of `positions` (before anything is allocated).
    auto within_limit = [&](int64_t rows, int64_t positions) {
      return options.max_kv_bytes == 0 ||
             rows * positions * kv.bytes_per_token + kv.extracted_bytes <= options.max_kv_bytes;
    };
    if (!within_limit(B, P + room)) {
      return fail(KvLimitError(absl::StrCat(
          "generate: KV limit: ", B, " rows x ", P + room, " positions (prompts padded to ", P,
          " + ", room, " generated) x ", kv.bytes_per_token, " bytes per token = ",
          B * (P + room) * kv.bytes_per_token, " bytes exceed max_kv_bytes ",
          options.max_kv_bytes)));
    }

    at::Tensor ids = at::full({B, T}, options.pad_token_id, at::kLong);
    at::Tensor mask = at::zeros({B, P + room}, at::kLong);
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = prompts[b];
      const int64_t fresh = static_cast<int64_t>(p.size()) - reuse[b];
      ids[b].narrow(0, T - fresh, fresh)
          .copy_(at::tensor(std::vector<int64_t>(p.begin() + reuse[b], p.end()), at::kLong));
      mask[b].narrow(0, P0 - reuse[b], reuse[b]).fill_(1);
      mask[b].narrow(0, P - fresh, fresh).fill_(1);
    }
    ids = ids.to(device);
    mask = mask.to(device);
    at::Tensor prompt_mask = mask.narrow(1, 0, P);
    at::Tensor positions =
        (prompt_mask.cumsum(-1) - 1).masked_fill(prompt_mask.eq(0), 1).narrow(1, P0, T);

    kv.cache = KVCache::Allocate(policy.config(), B, P + room, policy.dtype(), device);
    kv.alloc_rows = B;
    KVCache& cache = kv.cache;
    // The reused block's padding is never written by a forward pass: zero it, since masking adds
    // to the scores and uninitialised memory there could hold NaN (NaN + lowest is NaN). Each
    // layer of the callers' caches is freed once copied when nobody else holds it.
    for (size_t l = 0; l < cache.keys.size() && P0 > 0; ++l) {
      cache.keys[l].narrow(2, 0, P0).zero_();
      cache.values[l].narrow(2, 0, P0).zero_();
      for (int64_t b = 0; b < B; ++b) {
        if (reuse[b] == 0) continue;
        SequenceCache& c = *(*caches)[b];
        cache.keys[l][b].narrow(1, P0 - reuse[b], reuse[b]).copy_(c.keys[l].narrow(1, 0, reuse[b]));
        cache.values[l][b].narrow(1, P0 - reuse[b], reuse[b]).copy_(c.values[l].narrow(1, 0, reuse[b]));
        if ((*caches)[b].use_count() == 1) {
          c.keys[l] = at::Tensor();
          c.values[l] = at::Tensor();
        }
      }
    }
    if (caches != nullptr) {
      for (SequenceCachePtr& c : *caches) c.reset();
    }
    // Prefill in row groups of at most kPrefillTokens padded tokens, each writing its rows of the
    // shared cache through views, so a wide batch of long prompts never holds every row's
    // activations at once (the attention chunks queries; this bounds the rows).
    constexpr int64_t kPrefillTokens = 32768;
    const int64_t rows_per_group = std::max<int64_t>(1, kPrefillTokens / P);
    std::vector<at::Tensor> last_hidden;
    for (int64_t r0 = 0; r0 < B; r0 += rows_per_group) {
      const int64_t n = std::min(rows_per_group, B - r0);
      KVCache rows;
      for (size_t l = 0; l < cache.keys.size(); ++l) {
        rows.keys.push_back(cache.keys[l].narrow(0, r0, n));
        rows.values.push_back(cache.values[l].narrow(0, r0, n));
      }
      rows.length = P0;
      at::Tensor hidden = policy.Hidden(ids.narrow(0, r0, n), positions.narrow(0, r0, n),
                                        prompt_mask.narrow(0, r0, n), &rows);
      last_hidden.push_back(hidden.select(1, T - 1));
    }
    cache.length = P;
    at::Tensor logits = policy.Logits(at::cat(last_hidden, 0));  // [B, V]
    at::Tensor next_pos = positions.select(1, T - 1) + 1;          // [B]

    at::Generator gen = at::globalContext().defaultGenerator(device).clone();
    gen.set_current_seed(options.seed);

    std::vector<int64_t> active(B);  // original row of each batch row
    for (int64_t b = 0; b < B; ++b) active[b] = b;
    for (int64_t step = 0; step < options.max_new_tokens; ++step) {
      at::Tensor logp = AccurateLogSoftmax(logits);
      at::Tensor tokens, sampling_lp;
      if (options.do_sample) {
        // Plain temperature-1 sampling reuses logp (saves two vocab-wide softmaxes).
        const bool plain = options.temperature == 1.0 && options.top_p >= 1.0 &&
                           (options.top_k == 0 || options.top_k >= logits.size(-1));
        at::Tensor sampling_logp = plain ? logp : AccurateLogSoftmax(ProcessLogits(logits, options));
        // Inverse-CDF sampling: one uniform per row (at::multinomial draws an exponential per
        // vocabulary entry, which costs as much as a small model's decode step on CPU).
        const int64_t vocab = logits.size(-1);
        at::Tensor cdf = sampling_logp.exp().to(at::kDouble).cumsum(-1);
        at::Tensor u;
        if (options.row_seeds.empty()) {
          u = at::rand({cdf.size(0), 1}, gen, cdf.options());
        } else {
          std::vector<double> draws(active.size());
          for (size_t r = 0; r < active.size(); ++r) {
            const uint64_t bits = SplitMix64(options.row_seeds[active[r]] ^
                                             SplitMix64(static_cast<uint64_t>(step)));
            draws[r] = static_cast<double>(bits >> 11) * 0x1.0p-53;  // [0, 1)
          }
          u = at::tensor(draws, cdf.options()).unsqueeze(1);
        }
        u = u * cdf.narrow(-1, vocab - 1, 1);
        tokens = at::searchsorted(cdf, u, /*out_int32=*/false, /*right=*/true)
                     .squeeze(1)
                     .clamp_max(vocab - 1);
        sampling_lp = sampling_logp.gather(1, tokens.unsqueeze(1)).squeeze(1);
      } else {
        tokens = logits.argmax(-1);
      }
      at::Tensor lp = logp.gather(1, tokens.unsqueeze(1)).squeeze(1);
      if (!sampling_lp.defined()) sampling_lp = lp;
      at::Tensor tokens_cpu = tokens.to(at::kCPU);
      at::Tensor lp_cpu = lp.to(at::kCPU);
      at::Tensor slp_cpu = sampling_lp.to(at::kCPU);
      auto tok_a = tokens_cpu.accessor<int64_t, 1>();
      auto lp_a = lp_cpu.accessor<float, 1>();
      auto slp_a = slp_cpu.accessor<float, 1>();

      std::vector<int64_t> keep;  // batch rows that continue
      for (size_t r = 0; r < active.size(); ++r) {
        GenerationResult& res = results[active[r]];
        const int64_t tok = tok_a[r];
        res.token_ids.push_back(tok);
        res.logprobs.push_back(lp_a[r]);
        res.sampling_logprobs.push_back(slp_a[r]);
        bool done = false;
        if (std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), tok) !=
            options.stop_token_ids.end()) {
          res.finish_reason = FinishReason::kStopToken;
          done = true;
        } else if (max_stop_len > 0) {
          // Every token decodes to >= 1 byte (byte-level BPE) except skipped specials, so a
          // window of max_stop_len + 8 tokens sees any match that ends in the newest token.
          const size_t window = std::min(res.token_ids.size(), max_stop_len + 8);
          std::vector<int64_t> tail(res.token_ids.end() - window, res.token_ids.end());
          const std::string text = detokenize(tail);
          for (const auto& s : options.stop_strings) {
            if (text.find(s) != std::string::npos) {
              res.finish_reason = FinishReason::kStopString;
              res.matched_stop = s;
              done = true;
              break;
            }
          }
        }
        if (!done && step + 1 == options.max_new_tokens) {
          res.finish_reason = FinishReason::kLength;
          done = true;
        }
        if (!done) {
          keep.push_back(static_cast<int64_t>(r));
        } else if (caches != nullptr) {
          // The row's cache holds its prompt and every generated token but the one just drawn.
          auto sc = std::make_shared<SequenceCache>();
          sc->tokens = prompts[active[r]];
          sc->tokens.insert(sc->tokens.end(), res.token_ids.begin(), res.token_ids.end() - 1);
          const int64_t n = static_cast<int64_t>(sc->tokens.size());
          const int64_t first = cache.length - n;
          if (kv.alloc_rows == 1 && mask[r].narrow(0, first, n).all().item<bool>()) {
            // The only row and unpadded: its cache is a view of the batch cache (no copy).
            for (size_t l = 0; l < cache.keys.size(); ++l) {
              sc->keys.push_back(cache.keys[l][r].narrow(1, first, n));
              sc->values.push_back(cache.values[l][r].narrow(1, first, n));
            }
          } else {
            at::Tensor filled = mask[r].narrow(0, 0, cache.length).nonzero().squeeze(1);
            for (size_t l = 0; l < cache.keys.size(); ++l) {
              sc->keys.push_back(cache.keys[l][r].index_select(1, filled));
              sc->values.push_back(cache.values[l][r].index_select(1, filled));
            }
            kv.extracted_bytes += n * kv.bytes_per_token;
          }
          TORCH_CHECK(sc->keys[0].size(1) == n, "sequence cache of ", sc->keys[0].size(1),
                      " positions for ", n, " tokens");
          new_caches[active[r]] = std::move(sc);
        }
      }
      if (keep.empty()) break;
      if (keep.size() != active.size()) {
        // Compact the continuing rows into the first keep.size() rows in place (a gather of one
        // layer at a time, so no second copy of the whole cache is ever alive).
        const int64_t k = static_cast<int64_t>(keep.size());
        at::Tensor rows = at::tensor(keep, at::kLong).to(device);
        for (size_t l = 0; l < cache.keys.size(); ++l) {
          for (at::Tensor* t : {&cache.keys[l], &cache.values[l]}) {
            at::Tensor moved = t->narrow(2, 0, cache.length).index_select(0, rows);
            *t = t->narrow(0, 0, k);
            t->narrow(2, 0, cache.length).copy_(moved);
          }
        }
        mask = mask.index_select(0, rows);
        next_pos = next_pos.index_select(0, rows);
        tokens = tokens.index_select(0, rows);
        std::vector<int64_t> next_active;
        for (int64_t r : keep) next_active.push_back(active[r]);
        active = std::move(next_active);
      }
      const int64_t past = cache.length;
      if (past == cache.capacity()) {
        // Full: grow the generated part (doubling, at most to max_new_tokens), one layer at a
        // time, dropping the rows compacted away.
        const int64_t k = static_cast<int64_t>(active.size());
        const int64_t want = std::min(options.max_new_tokens, std::max(2 * room, kKvBlockTokens));
        int64_t grown = want;
        if (options.max_kv_bytes > 0) {
          const int64_t fits = (options.max_kv_bytes - kv.extracted_bytes) /
                               (k * kv.bytes_per_token) - P;
          grown = std::min(grown, fits);
        }
        if (P + grown <= past) {
          return fail(KvLimitError(absl::StrCat(
              "generate: KV limit: ", k, " rows need more than ", past, " positions (", P,
              " prompt + ", room, " generated) x ", kv.bytes_per_token,
              " bytes per token, plus ", kv.extracted_bytes,
              " bytes of finished rows' caches; max_kv_bytes is ", options.max_kv_bytes)));
        }
        room = grown;
        for (size_t l = 0; l < cache.keys.size(); ++l) {
          for (at::Tensor* t : {&cache.keys[l], &cache.values[l]}) {
            at::Tensor bigger = at::empty({k, t->size(1), P + room, t->size(3)}, t->options());
            bigger.narrow(2, 0, past).copy_(t->narrow(2, 0, past));
            *t = std::move(bigger);
          }
        }
        kv.alloc_rows = k;
        mask = at::cat({mask, at::zeros({k, P + room - mask.size(1)}, mask.options())}, 1);
      }
      mask.select(1, past).fill_(1);
      logits = policy.forward(tokens.unsqueeze(1), next_pos.unsqueeze(1),
                              mask.narrow(1, 0, past + 1), &cache)
                   .squeeze(1);
      next_pos = next_pos + 1;
    }
    if (caches != nullptr) *caches = std::move(new_caches);
  } catch (const c10::Error& e) {
    if (IsAllocationFailure(e)) {
      return fail(absl::ResourceExhaustedError(absl::StrCat(
          "generate: out of memory on ", policy.device().str(), " with a KV cache of ",
          describe(), " (max_kv_bytes ", options.max_kv_bytes, "): ",
          e.what_without_backtrace())));
    }
    return fail(absl::InternalError(absl::StrCat("generate: ", e.what_without_backtrace())));
  } catch (const std::bad_alloc& e) {
    return fail(absl::ResourceExhaustedError(
        absl::StrCat("generate: out of host memory with a KV cache of ", describe(), ": ",
                     e.what())));
  } catch (const std::exception& e) {
    return fail(absl::InternalError(absl::StrCat("generate: ", e.what())));
  }
  return results;
}

}  // namespace envtune
