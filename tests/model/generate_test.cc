// Batched generation: HF greedy fixtures, cache vs recomputation, seeded sampling, top-k/top-p,
// stop tokens/strings and input errors.
#include "model/generate.h"

#include <gtest/gtest.h>

#include <set>

#include "model/device.h"
#include "model/qwen2.h"
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
