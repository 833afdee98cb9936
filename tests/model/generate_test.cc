// Batched generation: HF greedy fixtures, cache vs recomputation, seeded sampling, top-k/top-p,
// stop tokens/strings and input errors.
#include "model/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

#include "model/device.h"
#include "model/qwen2.h"
#include "tests/actor/tiny_policy.h"
#include "tests/model/golden_util.h"

namespace envtune {
namespace {

using testing::GoldenModels;
using testing::GoldenQwen2Dir;
using testing::ReadJson;

class GreedyTest : public ::testing::TestWithParam<testing::GoldenModel> {};

TEST_P(GreedyTest, MatchesHfGenerate) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found (set ENVTUNE_SHARED_DIR)";
  auto policy = LoadPolicy(root + "/" + GetParam().name);
  ASSERT_TRUE(policy.ok()) << policy.status();
  auto fixture = ReadJson(root + "/" + GetParam().fixtures + "/greedy.json");
  auto prompts = fixture["prompts"].get<std::vector<std::vector<int64_t>>>();
  auto expected = fixture["generated_ids"].get<std::vector<std::vector<int64_t>>>();
  auto expected_lp = fixture["logprobs"].get<std::vector<std::vector<double>>>();
  GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = fixture["max_new_tokens"].get<int64_t>();
  auto results = Generate(**policy, prompts, options);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ((*results)[i].token_ids, expected[i]) << "prompt " << i;
    EXPECT_EQ((*results)[i].finish_reason, FinishReason::kLength);
    ASSERT_EQ((*results)[i].logprobs.size(), expected_lp[i].size());
    for (size_t t = 0; t < expected_lp[i].size(); ++t) {
      EXPECT_NEAR((*results)[i].logprobs[t], expected_lp[i][t], 1e-4) << i << "," << t;
      EXPECT_EQ((*results)[i].sampling_logprobs[t], (*results)[i].logprobs[t]);
    }
  }
  // Each prompt alone (no padding) gives the same tokens.
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto alone = Generate(**policy, {prompts[i]}, options);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ((*alone)[0].token_ids, expected[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(AllModels, GreedyTest, ::testing::ValuesIn(GoldenModels()),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

class SamplingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string root = GoldenQwen2Dir();
    if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
    auto policy = LoadPolicy(root + "/qwen2-tiny");
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = *policy;
  }
  // Log-probs of `generated` after `prompt` recomputed by one uncached forward pass.
  std::vector<double> Recompute(const std::vector<int64_t>& prompt,
                                const std::vector<int64_t>& generated) {
    at::NoGradGuard no_grad;
    std::vector<int64_t> seq = prompt;
    seq.insert(seq.end(), generated.begin(), generated.end());
    at::Tensor logp = policy_->forward(at::tensor(seq, at::kLong).unsqueeze(0)).log_softmax(-1)[0];
    std::vector<double> out;
    for (size_t t = 0; t < generated.size(); ++t) {
      out.push_back(logp[prompt.size() - 1 + t][generated[t]].item<double>());
    }
    return out;
  }
  const std::vector<std::vector<int64_t>> prompts_ = {
      {5, 17, 300, 42, 9}, {7}, {100, 200, 300, 400, 500, 11, 12, 13, 14}};
  Policy policy_{nullptr};
};

TEST_F(SamplingTest, CachedLogprobsEqualUncachedRecomputation) {
  GenerationOptions options;
  options.max_new_tokens = 24;
  options.temperature = 0.7;
  options.seed = 11;
  auto results = Generate(*policy_, prompts_, options);
  ASSERT_TRUE(results.ok()) << results.status();
  for (size_t i = 0; i < prompts_.size(); ++i) {
    const auto& r = (*results)[i];
    ASSERT_EQ(r.token_ids.size(), 24u);
    auto expected = Recompute(prompts_[i], r.token_ids);
    for (size_t t = 0; t < expected.size(); ++t) EXPECT_NEAR(r.logprobs[t], expected[t], 1e-5);
    // With temperature 0.7 the sampling distribution is sharper than the raw one.
    for (size_t t = 0; t < expected.size(); ++t) {
      EXPECT_NE(r.sampling_logprobs[t], r.logprobs[t]);
    }
  }
}

// A multi-turn conversation: each turn's prompt is the previous prompt + reply + new tokens. With
// sequence caches only the new tokens are prefilled; tokens and log-probs match generating
// from the full prompt without caches (greedy, so any numerical drift would show as a token).
TEST_F(SamplingTest, SequenceCachesMatchFullPrefillAcrossTurns) {
  GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = 6;
  std::vector<std::vector<int64_t>> plain = prompts_, cached = prompts_;
  std::vector<SequenceCachePtr> caches(prompts_.size());
  const std::vector<std::vector<int64_t>> observations = {{31, 32}, {33}, {34, 35, 36, 37}};
  std::vector<int64_t> previous_cached(prompts_.size(), 0);
  for (int turn = 0; turn < 3; ++turn) {
    auto expected = Generate(*policy_, plain, options);
    auto got = Generate(*policy_, cached, options, nullptr, &caches);
    ASSERT_TRUE(expected.ok() && got.ok()) << got.status();
    for (size_t i = 0; i < prompts_.size(); ++i) {
      const auto& e = (*expected)[i];
      const auto& g = (*got)[i];
      EXPECT_EQ(g.token_ids, e.token_ids) << "turn " << turn << " row " << i;
      ASSERT_EQ(g.logprobs.size(), e.logprobs.size());
      for (size_t t = 0; t < e.logprobs.size(); ++t) EXPECT_NEAR(g.logprobs[t], e.logprobs[t], 1e-5);
      // Turn 0 has no cache; later turns reuse everything the previous turn cached.
      EXPECT_EQ(g.reused_tokens, turn == 0 ? 0 : previous_cached[i]) << "turn " << turn;
      previous_cached[i] = SequenceCacheTokens(caches[i]);
      // The new cache covers the prompt and every generated token but the last.
      EXPECT_EQ(SequenceCacheTokens(caches[i]),
                static_cast<int64_t>(cached[i].size() + g.token_ids.size() - 1));
      for (auto* seq : {&plain[i], &cached[i]}) {
        seq->insert(seq->end(), e.token_ids.begin(), e.token_ids.end());
        seq->insert(seq->end(), observations[i].begin(), observations[i].end());
      }
    }
  }
}

// A cache is used only for the prefix it shares with the prompt: a prompt that diverges inside
// the cached span (e.g. a re-tokenized reply) or a cache from another conversation still gives
// the full-prefill result.
TEST_F(SamplingTest, SequenceCachesReuseOnlyTheCommonPrefix) {
  GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = 5;
  std::vector<SequenceCachePtr> caches(prompts_.size());
  ASSERT_TRUE(Generate(*policy_, prompts_, options, nullptr, &caches).ok());
  std::vector<std::vector<int64_t>> next = {
      {5, 17, 301, 42, 9, 60}, {7}, {90, 1, 2}};  // diverges at 2; shorter; unrelated
  std::swap(caches[1], caches[2]);                 // row 1 gets a cache longer than its prompt
  auto expected = Generate(*policy_, next, options);
  auto got = Generate(*policy_, next, options, nullptr, &caches);
  ASSERT_TRUE(expected.ok() && got.ok()) << got.status();
  for (size_t i = 0; i < next.size(); ++i) {
    EXPECT_EQ((*got)[i].token_ids, (*expected)[i].token_ids) << "row " << i;
    for (size_t t = 0; t < (*expected)[i].logprobs.size(); ++t) {
      EXPECT_NEAR((*got)[i].logprobs[t], (*expected)[i].logprobs[t], 1e-5);
    }
  }
  std::vector<SequenceCachePtr> wrong_size(1);
  EXPECT_FALSE(Generate(*policy_, next, options, nullptr, &wrong_size).ok());
}

// A configured device and the device its tensors report may differ only in the index:
// Device("cuda") has none while tensors say cuda:0, and cpu:0 tensors say cpu. KV reuse
// compared them with ==, so it was silently off on CUDA. cpu:0 against cpu is the same case,
// testable without a GPU.
TEST_F(SamplingTest, KvReuseWhenTheConfiguredDeviceDiffersOnlyInIndex) {
  EXPECT_TRUE(SameDevice(c10::Device("cuda"), c10::Device(c10::kCUDA, 0)));
  EXPECT_TRUE(SameDevice(c10::Device(c10::kCUDA, 3), c10::Device("cuda")));
  EXPECT_FALSE(SameDevice(c10::Device("cuda:0"), c10::Device("cuda:1")));
  EXPECT_FALSE(SameDevice(c10::Device("cuda"), c10::Device("cpu")));
  EXPECT_NE(c10::Device("cuda"), c10::Device(c10::kCUDA, 0));  // why SameDevice exists

  LoadPolicyOptions load;
  load.device = c10::Device(c10::kCPU, 0);
  auto indexed = LoadPolicy(GoldenQwen2Dir() + "/qwen2-tiny", load);
  ASSERT_TRUE(indexed.ok()) << indexed.status();
  ASSERT_TRUE((*indexed)->device().has_index());
  ASSERT_NE((*indexed)->parameters()[0].device(), (*indexed)->device());
  GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = 4;
  std::vector<SequenceCachePtr> caches(1);
  std::vector<std::vector<int64_t>> prompt = {prompts_[0]};
  auto first = Generate(**indexed, prompt, options, nullptr, &caches);
  ASSERT_TRUE(first.ok()) << first.status();
  const int64_t cached = SequenceCacheTokens(caches[0]);
  ASSERT_GT(cached, 0);
  prompt[0].insert(prompt[0].end(), (*first)[0].token_ids.begin(), (*first)[0].token_ids.end());
  prompt[0].push_back(31);
  auto second = Generate(**indexed, prompt, options, nullptr, &caches);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)[0].reused_tokens, cached);
  auto full = Generate(**indexed, prompt, options);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ((*second)[0].token_ids, (*full)[0].token_ids);
}

// The cache generation used before it grew: one row, a dense cache for prompt + n allocated up
// front, greedy.
std::vector<int64_t> DenseCacheGreedy(PolicyImpl& policy, const std::vector<int64_t>& prompt,
                                      int64_t n) {
  at::NoGradGuard no_grad;
  const int64_t P = static_cast<int64_t>(prompt.size());
  KVCache cache = KVCache::Allocate(policy.config(), 1, P + n, policy.dtype(), policy.device());
  at::Tensor mask = at::ones({1, P + n}, at::kLong);
  at::Tensor logits = policy.forward(at::tensor(prompt, at::kLong).unsqueeze(0),
                                     at::arange(P, at::kLong).unsqueeze(0),
                                     mask.narrow(1, 0, P), &cache)
                          .select(1, P - 1);
  std::vector<int64_t> out;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t token = logits.argmax(-1).item<int64_t>();
    out.push_back(token);
    logits = policy.forward(at::full({1, 1}, token, at::kLong), at::full({1, 1}, P + t, at::kLong),
                            mask.narrow(1, 0, P + t + 1), &cache)
                 .select(1, 0);
  }
  return out;
}

// Replies longer than one cache block (kKvBlockTokens) grow the cache twice (256 -> 512 -> 700
// generated positions): every row's greedy tokens equal the dense-cache generation of that row
// alone, also when stop tokens end rows at different steps (rows compacted out in place).
TEST(GrowingKvCache, GreedyTokensEqualTheDenseCachePath) {
  auto policy = testing_actor::TinyPolicy(512, 3, /*stop_id=*/511, /*stop_weight=*/0);  // untied
  const std::vector<std::vector<int64_t>> prompts = {
      {5, 17, 300, 42, 9}, {7}, {100, 200, 300, 400, 500, 11, 12, 13, 14}};
  constexpr int64_t kNew = 700;
  ASSERT_GT(kNew, 2 * kKvBlockTokens);
  std::vector<std::vector<int64_t>> dense;
  for (const auto& p : prompts) dense.push_back(DenseCacheGreedy(*policy, p, kNew));
  GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = kNew;
  auto grown = Generate(*policy, prompts, options);
  ASSERT_TRUE(grown.ok()) << grown.status();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ((*grown)[i].token_ids, dense[i]) << i;

  // Each row's first token as a stop token: rows end at different steps.
  std::vector<int64_t> stops;
  for (size_t i = 0; i < prompts.size(); ++i) stops.push_back(dense[i][3 * i]);
  options.stop_token_ids = stops;
  auto stopped = Generate(*policy, prompts, options);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  std::set<size_t> lengths;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int64_t> expected;
    for (int64_t t : dense[i]) {
      expected.push_back(t);
      if (std::find(stops.begin(), stops.end(), t) != stops.end()) break;
    }
    EXPECT_EQ((*stopped)[i].token_ids, expected) << i;
    lengths.insert(expected.size());
  }
  EXPECT_GT(lengths.size(), 1u);  // rows did finish at different steps
}

// Sampled replies (each row its own stream) that end inside the second block, inside the third
// and at max_new_tokens: the log-prob of every token equals an uncached forward pass over the
// whole sequence, so the cache kept every row's keys and values through both growths and the
// compactions; the rows' sequence caches cover prompt + reply but the last token.
TEST(GrowingKvCache, SampledLogprobsEqualUncachedRecomputationAcrossGrowth) {
  auto policy = testing_actor::TinyPolicy(512, 5, /*stop_id=*/511, /*stop_weight=*/0);
  const std::vector<std::vector<int64_t>> prompts = {{5, 17, 300, 42, 9}, {7, 8}, {100, 200, 300}};
  constexpr int64_t kNew = 700;
  GenerationOptions options;
  options.max_new_tokens = kNew;
  options.row_seeds = {11, 12, 13};
  auto full = Generate(*policy, prompts, options);
  ASSERT_TRUE(full.ok()) << full.status();
  const auto& s0 = (*full)[0].token_ids;
  const auto& s1 = (*full)[1].token_ids;
  const auto& s2 = (*full)[2].token_ids;
  auto first = [](const std::vector<int64_t>& s, int64_t t, size_t end) {
    return static_cast<size_t>(std::find(s.begin(), s.begin() + end, t) - s.begin());
  };
  // Stop a ends row 0 in [300, 500) and appears in no other row; stop b ends row 1 in
  // [550, 690), appears nowhere in row 2 and not in row 0 before a; row 2 runs to the end.
  int64_t a = -1, b = -1;
  for (int64_t t = 0; t < 512 && a < 0; ++t) {
    const size_t i = first(s0, t, s0.size());
    if (i >= 300 && i < 500 && first(s1, t, s1.size()) == s1.size() &&
        first(s2, t, s2.size()) == s2.size()) {
      a = t;
    }
  }
  ASSERT_GE(a, 0) << "no stop token for row 0 with these seeds";
  const size_t end0 = first(s0, a, s0.size()) + 1;
  for (int64_t t = 0; t < 512 && b < 0; ++t) {
    const size_t i = first(s1, t, s1.size());
    if (i >= 550 && i < 690 && first(s2, t, s2.size()) == s2.size() &&
        first(s0, t, end0) == end0) {
      b = t;
    }
  }
  ASSERT_GE(b, 0) << "no stop token for row 1 with these seeds";
  options.stop_token_ids = {a, b};
  std::vector<SequenceCachePtr> caches(prompts.size());
  auto got = Generate(*policy, prompts, options, nullptr, &caches);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].token_ids.size(), end0);
  EXPECT_EQ((*got)[1].token_ids.size(), first(s1, b, s1.size()) + 1);
  EXPECT_EQ((*got)[2].token_ids.size(), static_cast<size_t>(kNew));
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& r = (*got)[i];
    EXPECT_EQ(r.token_ids, std::vector<int64_t>((*full)[i].token_ids.begin(),
                                                (*full)[i].token_ids.begin() + r.token_ids.size()))
        << i;
    std::vector<int64_t> seq = prompts[i];
    seq.insert(seq.end(), r.token_ids.begin(), r.token_ids.end());
    at::Tensor logp = policy->forward(at::tensor(seq, at::kLong).unsqueeze(0)).log_softmax(-1)[0];
    double worst = 0;
    for (size_t t = 0; t < r.token_ids.size(); ++t) {
      const double expected = logp[prompts[i].size() - 1 + t][r.token_ids[t]].item<double>();
      worst = std::max(worst, std::abs(expected - r.logprobs[t]));
    }
    EXPECT_LT(worst, 1e-4) << "row " << i;
    EXPECT_EQ(SequenceCacheTokens(caches[i]),
              static_cast<int64_t>(prompts[i].size() + r.token_ids.size() - 1));
  }
}

TEST(GrowingKvCache, MaxKvBytesIsAnErrorWithTheNumbers) {
  auto policy = testing_actor::TinyPolicy(512, 4);
  const int64_t per_token = KvBytesPerToken(*policy);
  EXPECT_EQ(per_token, 2 * 2 * 1 * 8 * 4);  // (k, v) x layers x kv heads x head_dim x fp32
  const std::vector<std::vector<int64_t>> prompts = {{5, 17, 300}, {7, 8, 9}};
  GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = 40;
  std::vector<SequenceCachePtr> caches(prompts.size());
  ASSERT_TRUE(Generate(*policy, prompts, options, nullptr, &caches).ok());
  ASSERT_GT(SequenceCacheTokens(caches[0]), 0);

  // Two rows of 3 + 40 positions need 2 x 43 x per_token bytes; one byte less fails before
  // allocating, says so, and the callers' caches are reset.
  options.max_kv_bytes = 2 * 43 * per_token - 1;
  auto limited = Generate(*policy, prompts, options, nullptr, &caches);
  ASSERT_FALSE(limited.ok());
  EXPECT_TRUE(IsKvLimitError(limited.status())) << limited.status();
  EXPECT_NE(limited.status().message().find(absl::StrCat(2 * 43 * per_token, " bytes exceed")),
            std::string::npos)
      << limited.status();
  EXPECT_EQ(SequenceCacheTokens(caches[0]), 0);
  // Exactly enough is fine, and gives the unlimited tokens.
  options.max_kv_bytes = 2 * 43 * per_token;
  auto exact = Generate(*policy, prompts, options);
  options.max_kv_bytes = 0;
  auto unlimited = Generate(*policy, prompts, options);
  ASSERT_TRUE(exact.ok() && unlimited.ok()) << exact.status();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ((*exact)[i].token_ids, (*unlimited)[i].token_ids);
  }

  // A limit reached while growing (room for 300 generated positions of 600) fails when the
  // cache is full, naming the positions.
  options.max_new_tokens = 600;
  options.max_kv_bytes = 1 * (3 + 300) * per_token;
  auto grown = Generate(*policy, {prompts[0]}, options);
  ASSERT_FALSE(grown.ok());
  EXPECT_TRUE(IsKvLimitError(grown.status())) << grown.status();
  EXPECT_NE(grown.status().message().find("more than 303 positions"), std::string::npos)
      << grown.status();
  // A real allocation failure is not a limit error.
  EXPECT_FALSE(IsKvLimitError(absl::ResourceExhaustedError("out of memory")));
}

TEST_F(SamplingTest, SeededSamplingIsReproducible) {
  GenerationOptions options;
  options.max_new_tokens = 16;
  options.seed = 1234;
  auto a = Generate(*policy_, prompts_, options);
  auto b = Generate(*policy_, prompts_, options);
  options.seed = 4321;
  auto c = Generate(*policy_, prompts_, options);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  bool any_different = false;
  for (size_t i = 0; i < prompts_.size(); ++i) {
    EXPECT_EQ((*a)[i].token_ids, (*b)[i].token_ids);
    EXPECT_EQ((*a)[i].logprobs, (*b)[i].logprobs);
    any_different |= (*a)[i].token_ids != (*c)[i].token_ids;
  }
  EXPECT_TRUE(any_different) << "different seeds gave identical samples";
}

// With row seeds a row's sample is its own: generated alone, or in a batch with other rows in
// another order, it draws the same tokens (what makes actor rollouts reproducible whatever the
// generation batches happen to be).
TEST_F(SamplingTest, RowSeedsMakeARowsSampleIndependentOfItsBatch) {
  GenerationOptions options;
  options.max_new_tokens = 16;
  options.row_seeds = {101, 202, 303};
  auto batch = Generate(*policy_, prompts_, options);
  ASSERT_TRUE(batch.ok()) << batch.status();
  for (size_t i = 0; i < prompts_.size(); ++i) {
    GenerationOptions alone = options;
    alone.row_seeds = {options.row_seeds[i]};
    alone.seed = 999;  // unused when row seeds are given
    auto single = Generate(*policy_, {prompts_[i]}, alone);
    ASSERT_TRUE(single.ok()) << single.status();
    EXPECT_EQ((*single)[0].token_ids, (*batch)[i].token_ids) << "row " << i;
  }
  GenerationOptions reversed = options;
  reversed.row_seeds = {303, 202, 101};
  auto other = Generate(*policy_, {prompts_[2], prompts_[1], prompts_[0]}, reversed);
  ASSERT_TRUE(other.ok());
  for (size_t i = 0; i < prompts_.size(); ++i) {
    EXPECT_EQ((*other)[2 - i].token_ids, (*batch)[i].token_ids) << "row " << i;
  }
  GenerationOptions reseeded = options;
  reseeded.row_seeds = {102, 203, 304};
  auto c = Generate(*policy_, prompts_, reseeded);
  ASSERT_TRUE(c.ok());
  bool any_different = false;
  for (size_t i = 0; i < prompts_.size(); ++i) any_different |= (*c)[i].token_ids != (*batch)[i].token_ids;
  EXPECT_TRUE(any_different) << "different row seeds gave identical samples";
  options.row_seeds = {1, 2};  // not one per prompt
  EXPECT_FALSE(Generate(*policy_, prompts_, options).ok());
}

TEST_F(SamplingTest, TopKOneAndTinyTopPAreGreedy) {
  GenerationOptions greedy;
  greedy.do_sample = false;
  greedy.max_new_tokens = 12;
  auto expected = Generate(*policy_, prompts_, greedy);
  ASSERT_TRUE(expected.ok());
  GenerationOptions topk = greedy;
  topk.do_sample = true;
  topk.top_k = 1;
  topk.seed = 5;
  GenerationOptions topp = topk;
  topp.top_k = 0;
  topp.top_p = 1e-6;
  for (const auto& options : {topk, topp}) {
    auto got = Generate(*policy_, prompts_, options);
    ASSERT_TRUE(got.ok());
    for (size_t i = 0; i < prompts_.size(); ++i) {
      EXPECT_EQ((*got)[i].token_ids, (*expected)[i].token_ids);
      for (float lp : (*got)[i].sampling_logprobs) EXPECT_NEAR(lp, 0.0, 1e-6);
    }
  }
}

TEST_F(SamplingTest, TopKAndTopPRestrictTheSupport) {
  GenerationOptions options;
  options.max_new_tokens = 10;
  options.temperature = 2.0;  // flatten so the restriction matters
  options.top_k = 3;
  options.seed = 99;
  auto results = Generate(*policy_, prompts_, options);
  ASSERT_TRUE(results.ok());
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < prompts_.size(); ++i) {
    std::vector<int64_t> seq = prompts_[i];
    for (int64_t tok : (*results)[i].token_ids) {
      at::Tensor logits = policy_->forward(at::tensor(seq, at::kLong).unsqueeze(0))[0][-1];
      at::Tensor top = std::get<1>(logits.topk(3));
      std::set<int64_t> allowed;
      for (int64_t k = 0; k < 3; ++k) allowed.insert(top[k].item<int64_t>());
      EXPECT_TRUE(allowed.count(tok)) << "token " << tok << " not in top-3";
      seq.push_back(tok);
    }
  }
  // top_p: sampled tokens lie in the smallest prefix (by descending prob) reaching top_p.
  options.top_k = 0;
  options.top_p = 0.05;
  options.temperature = 1.0;
  results = Generate(*policy_, prompts_, options);
  ASSERT_TRUE(results.ok());
  for (size_t i = 0; i < prompts_.size(); ++i) {
    std::vector<int64_t> seq = prompts_[i];
    for (int64_t tok : (*results)[i].token_ids) {
      at::Tensor probs = policy_->forward(at::tensor(seq, at::kLong).unsqueeze(0))[0][-1].softmax(-1);
      const double p_tok = probs[tok].item<double>();
      // Mass strictly above the token's probability must be < top_p for it to be kept.
      const double above = probs.masked_select(probs > p_tok).sum().item<double>();
      EXPECT_LT(above, 0.05 + 1e-6);
      seq.push_back(tok);
    }
  }
}

TEST_F(SamplingTest, StopTokensAndStopStrings) {
  GenerationOptions greedy;
  greedy.do_sample = false;
  greedy.max_new_tokens = 12;
  auto full = Generate(*policy_, prompts_, greedy);
  ASSERT_TRUE(full.ok());
  // Stop at the 4th generated token of row 0.
  const int64_t stop_tok = (*full)[0].token_ids[3];
  GenerationOptions stop = greedy;
  stop.stop_token_ids = {stop_tok};
  auto got = Generate(*policy_, prompts_, stop);
  ASSERT_TRUE(got.ok());
  auto first = std::find((*full)[0].token_ids.begin(), (*full)[0].token_ids.end(), stop_tok);
  std::vector<int64_t> want((*full)[0].token_ids.begin(), first + 1);
  EXPECT_EQ((*got)[0].token_ids, want);
  EXPECT_EQ((*got)[0].finish_reason, FinishReason::kStopToken);
  for (size_t i = 1; i < prompts_.size(); ++i) {  // other rows unaffected up to their stop
    const auto& f = (*full)[i].token_ids;
    const auto& g = (*got)[i].token_ids;
    ASSERT_LE(g.size(), f.size());
    EXPECT_TRUE(std::equal(g.begin(), g.end(), f.begin()));
  }

  // Stop string spanning two tokens with a toy detokenizer: id -> "<id>".
  DetokenizeFn detok = [](const std::vector<int64_t>& ids) {
    std::string s;
    for (int64_t id : ids) s += "<" + std::to_string(id) + ">";
    return s;
  };
  const auto& row2 = (*full)[2].token_ids;
  GenerationOptions strings = greedy;
  strings.stop_strings = {std::to_string(row2[5]) + "><" + std::to_string(row2[6]) + ">"};
  got = Generate(*policy_, prompts_, strings, detok);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[2].finish_reason, FinishReason::kStopString);
  EXPECT_EQ((*got)[2].matched_stop, strings.stop_strings[0]);
  EXPECT_LE((*got)[2].token_ids.size(), 7u);
  EXPECT_EQ((*got)[2].token_ids.back(), (*full)[2].token_ids[(*got)[2].token_ids.size() - 1]);
  EXPECT_EQ(FinishReasonName(FinishReason::kStopString), std::string("stop_string"));
}

TEST_F(SamplingTest, BadInputsAreErrors) {
  GenerationOptions options;
  EXPECT_FALSE(Generate(*policy_, {{}}, options).ok());
  EXPECT_FALSE(Generate(*policy_, {{1, 100000}}, options).ok());
  EXPECT_FALSE(Generate(*policy_, {{1, -1}}, options).ok());
  options.temperature = 0;
  EXPECT_FALSE(Generate(*policy_, {{1}}, options).ok());
  options.temperature = 1;
  options.top_p = 0;
  EXPECT_FALSE(Generate(*policy_, {{1}}, options).ok());
  options.top_p = 1;
  options.stop_strings = {"x"};
  EXPECT_FALSE(Generate(*policy_, {{1}}, options).ok());  // no detokenizer
  options.stop_strings.clear();
  options.max_new_tokens = 0;
  auto none = Generate(*policy_, {{1}}, options);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE((*none)[0].token_ids.empty());
}

}  // namespace
}  // namespace envtune
