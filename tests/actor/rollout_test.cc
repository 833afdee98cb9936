// Rollout against fake (and, when it is built, real) env servers with tiny random Qwen2
// policies over the real Qwen vocabulary: token-in-token-out reconstruction, behaviour
// log-probs against a rescoring, batching, retries when a replica dies or drains, budgets and
// failed episodes.
#include "actor/rollout.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/channels.h"
#include "model/generate.h"
#include "model/score.h"
#include "model/text/chat_template.h"
#include "tests/actor/fake_env.h"
#include "tests/actor/tiny_policy.h"

namespace envtune {
namespace {

using testing_env::FakeEnvServer;
using testing_env::SharedLog;
using Json = nlohmann::ordered_json;

Json ToJson(const std::vector<v1::ChatMessage>& messages) {
  Json out = Json::array();
  for (const auto& m : messages) out.push_back({{"role", m.role()}, {"content", m.content()}});
  return out;
}

std::vector<EpisodeSpec> Specs(const std::string& task, int n, uint64_t seed0 = 100) {
  std::vector<EpisodeSpec> specs;
  for (int i = 0; i < n; ++i) {
    EpisodeSpec s;
    s.episode_id = "L1/" + std::to_string(i);
    s.lease_id = "L1";
    s.group_id = "L1";
    s.group_size = n;
    s.task_id = task;
    s.stage = 2;
    s.options.set_seed(seed0 + i);
    specs.push_back(s);
  }
  return specs;
}

class RolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = testing_actor::LoadTokenizer();
    if (tokenizer_ == nullptr) GTEST_SKIP() << "tokenizer not found at " << testing_actor::TokenizerPath();
    im_end_ = *tokenizer_->TokenToId(kImEnd);
    log_ = std::make_shared<SharedLog>();
  }
  std::unique_ptr<Tokenizer> tokenizer_;
  TokenId im_end_ = 0;
  std::shared_ptr<SharedLog> log_;
};

// Rebuilds the trajectory from the env's own log: opening rendering, then per step the model's
// masked ids (which must decode to the text the env received) and the observation delta ids.
void CheckTokenInTokenOut(const Tokenizer& tok, TokenId im_end, SharedLog& log, uint64_t seed,
                          const v1::Trajectory& t) {
  SCOPED_TRACE(t.episode_id());
  std::lock_guard<std::mutex> lock(log.mu);
  const auto& opening = log.openings.at(seed);
  const auto& steps = log.steps.at(seed);
  Json messages = ToJson(opening);
  auto prompt = tok.Encode(*RenderQwen25Chat(messages, Json(), true));
  ASSERT_TRUE(prompt.ok());
  std::vector<TokenId> expected = *prompt;
  std::string expected_mask(expected.size(), '\0');
  EXPECT_EQ(t.prompt_tokens(), expected.size());
  size_t pos = expected.size();
  ASSERT_EQ(t.loss_mask().size(), static_cast<size_t>(t.token_ids_size()));
  ASSERT_EQ(t.behaviour_logprobs_size(), t.token_ids_size());
  for (size_t k = 0; k < steps.size(); ++k) {
    // The reply: the run of mask-1 tokens starting at pos.
    size_t end = pos;
    while (end < t.loss_mask().size() && t.loss_mask()[end] == '\1') ++end;
    ASSERT_GT(end, pos) << "step " << k;
    std::vector<TokenId> reply(t.token_ids().begin() + pos, t.token_ids().begin() + end);
    const bool stopped = reply.back() == im_end;
    std::vector<TokenId> content(reply.begin(), reply.end() - (stopped ? 1 : 0));
    EXPECT_EQ(*tok.Decode(content), steps[k].model_output) << "step " << k;
    expected.insert(expected.end(), reply.begin(), reply.end());
    expected_mask.append(reply.size(), '\1');
    messages.push_back({{"role", "assistant"}, {"content", steps[k].model_output}});
    if (!steps[k].episode_ended) {
      Json added = ToJson(steps[k].observation);
      auto delta = RenderQwen25ChatDelta(messages, added, Json(), true);
      ASSERT_TRUE(delta.ok());
      auto obs = tok.Encode((stopped ? std::string() : std::string(kImEnd)) + "\n" + *delta);
      ASSERT_TRUE(obs.ok());
      expected.insert(expected.end(), obs->begin(), obs->end());
      expected_mask.append(obs->size(), '\0');
      for (auto& m : added) messages.push_back(m);
    }
    pos = expected.size();
  }
  EXPECT_EQ(std::vector<TokenId>(t.token_ids().begin(), t.token_ids().end()), expected);
  EXPECT_EQ(t.loss_mask(), expected_mask);
  for (int i = 0; i < t.token_ids_size(); ++i) {
    if (t.loss_mask()[i] == '\0') EXPECT_EQ(t.behaviour_logprobs(i), 0.0f);
    else EXPECT_LE(t.behaviour_logprobs(i), 0.0f);
  }
}

TEST_F(RolloutTest, TokenInTokenOutAndBehaviourLogprobs) {
  FakeEnvServer server(log_);
  ASSERT_TRUE(server.ok());
  EnvClient env(server.address());
  RolloutOptions options;
  options.concurrency = 4;
  options.max_new_tokens = 5;  // some replies stop by themselves, others are cut
  options.seed = 7;
  Rollout rollout(tokenizer_.get(), &env, options);
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 11, im_end_);
  auto specs = Specs("fake_3_2", 6);
  int callbacks = 0;
  auto results = rollout.Run(*policy, 5, specs,
                             [&](const EpisodeSpec&, EpisodeResult&) { ++callbacks; });
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 6u);
  EXPECT_EQ(callbacks, 6);
  EXPECT_GT(rollout.max_batch_rows(), 1);  // episodes shared generation batches
  bool saw_stop = false, saw_cut = false;
  for (size_t i = 0; i < results->size(); ++i) {
    const v1::Trajectory& t = (*results)[i].trajectory;
    ASSERT_FALSE(t.failed()) << t.error();
    EXPECT_EQ(t.episode_id(), specs[i].episode_id);
    EXPECT_EQ(t.finish_reason(), "done");
    EXPECT_EQ(t.policy_version(), 5u);
    EXPECT_EQ(t.stage(), 2u);
    EXPECT_EQ(t.group_size(), 6u);
    EXPECT_NEAR(t.reward(), 2.0 / 3.0, 1e-12);
    EXPECT_EQ(t.augmented(), specs[i].options.seed() % 2 == 1);
    ASSERT_EQ(t.turns_size(), 3);
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(t.turns(k).turn_index(), static_cast<uint32_t>(k));
      EXPECT_EQ(t.turns(k).score(), k % 2 == 0 ? 1.0 : 0.0);
      EXPECT_LT(t.turns(k).token_begin(), t.turns(k).token_end());
      EXPECT_EQ(t.loss_mask()[t.turns(k).token_begin()], '\1');
      if (k > 0) EXPECT_GT(t.turns(k).token_begin(), t.turns(k - 1).token_end());
    }
    EXPECT_EQ(t.turns(2).token_end(), static_cast<uint32_t>(t.token_ids_size()));
    CheckTokenInTokenOut(*tokenizer_, im_end_, *log_, specs[i].options.seed(), t);
    for (int k = 0; k < t.token_ids_size(); ++k) {
      if (t.loss_mask()[k] != '\1') continue;
      const bool last_of_reply = k + 1 == t.token_ids_size() || t.loss_mask()[k + 1] != '\1';
      if (last_of_reply) (t.token_ids(k) == im_end_ ? saw_stop : saw_cut) = true;
    }
    const v1::EpisodeStats& st = (*results)[i].stats;
    EXPECT_EQ(st.tokens(), static_cast<uint32_t>(t.token_ids_size()));
    int generated = 0;
    for (char m : t.loss_mask()) generated += m == '\1';
    EXPECT_EQ(st.generated_tokens(), static_cast<uint32_t>(generated));
    EXPECT_FALSE(st.valid());  // progress 2/3
  }
  EXPECT_TRUE(saw_stop);
  EXPECT_TRUE(saw_cut);

  // Behaviour log-probs equal a rescoring of the finished sequences (CPU fp32).
  std::vector<std::vector<int64_t>> sequences;
  std::vector<std::vector<uint8_t>> masks;
  for (const auto& r : *results) {
    sequences.emplace_back(r.trajectory.token_ids().begin(), r.trajectory.token_ids().end());
    masks.emplace_back(r.trajectory.loss_mask().begin(), r.trajectory.loss_mask().end());
  }
  auto scored = ScoreSequences(*policy, sequences, masks);
  ASSERT_TRUE(scored.ok()) << scored.status();
  at::Tensor lp = scored->logprobs.detach();
  double max_diff = 0;
  for (size_t i = 0; i < results->size(); ++i) {
    const auto& t = (*results)[i].trajectory;
    for (int k = 0; k < t.token_ids_size(); ++k) {
      if (t.loss_mask()[k] != '\1') continue;
      max_diff = std::max(max_diff, std::abs(lp[i][k].item<double>() - t.behaviour_logprobs(k)));
    }
  }
  EXPECT_LT(max_diff, 1e-4);
}

TEST_F(RolloutTest, GreedyIsReproducible) {
  FakeEnvServer server(log_);
  EnvClient env(server.address());
  RolloutOptions options;
  options.max_new_tokens = 4;
  Rollout rollout(tokenizer_.get(), &env, options);
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 12);
  auto specs = Specs("fake_2_1", 2);
  for (auto& s : specs) s.greedy = true;
  specs[1].options.set_seed(specs[0].options.seed());  // same opening
  auto a = rollout.Run(*policy, 1, specs);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)[0].trajectory.token_ids_size(), (*a)[1].trajectory.token_ids_size());
  EXPECT_TRUE(std::equal((*a)[0].trajectory.token_ids().begin(),
                         (*a)[0].trajectory.token_ids().end(),
                         (*a)[1].trajectory.token_ids().begin()));
}

// Lockstep: env replies arrive in a different order every run (random per-step delays), yet
// three runs give bitwise the same trajectories, tokens and behaviour log-probs, because each
// generation batch is every episode not done, in episode order. (With lockstep off the same
// runs differ: log-probs differed in 14-15 of the 16 episode comparisons in each of 3 tries.)
TEST_F(RolloutTest, LockstepRunsAreBitwiseReproducibleUnderJitteredEnvTimings) {
  FakeEnvServer server(log_);
  ASSERT_TRUE(server.ok());
  server.service().max_jitter_us = 4000;
  EnvClient env(server.address());
  RolloutOptions options;
  options.concurrency = 8;
  options.max_new_tokens = 6;  // some replies stop early, so episodes end at different times
  options.seed = 3;
  options.batch_gather = absl::Milliseconds(1);  // shorter than the env's delays
  options.lockstep = true;
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 16, im_end_);
  const std::vector<EpisodeSpec> specs = Specs("fake_3_2", 8);
  std::vector<std::vector<EpisodeResult>> runs;
  for (int run = 0; run < 3; ++run) {
    Rollout rollout(tokenizer_.get(), &env, options);
    absl::StatusOr<std::vector<EpisodeResult>> results = rollout.Run(*policy, 1, specs);
    ASSERT_TRUE(results.ok()) << results.status();
    EXPECT_GT(rollout.max_batch_rows(), 1);  // episodes shared generation batches
    runs.push_back(*std::move(results));
  }
  for (int run = 1; run < 3; ++run) {
    ASSERT_EQ(runs[run].size(), runs[0].size());
    for (size_t i = 0; i < runs[0].size(); ++i) {
      const v1::Trajectory& a = runs[0][i].trajectory;
      const v1::Trajectory& b = runs[run][i].trajectory;
      SCOPED_TRACE(absl::StrCat("run ", run, ", ", a.episode_id()));
      ASSERT_FALSE(b.failed()) << b.error();
      EXPECT_EQ(b.finish_reason(), a.finish_reason());
      ASSERT_EQ(b.token_ids_size(), a.token_ids_size());
      EXPECT_TRUE(std::equal(a.token_ids().begin(), a.token_ids().end(), b.token_ids().begin()));
      ASSERT_EQ(b.behaviour_logprobs_size(), a.behaviour_logprobs_size());
      EXPECT_EQ(std::memcmp(a.behaviour_logprobs().data(), b.behaviour_logprobs().data(),
                            sizeof(float) * static_cast<size_t>(a.behaviour_logprobs_size())),
                0)
          << "behaviour log-probs differ bitwise";
    }
  }
}

TEST_F(RolloutTest, StepsMoveToAnotherReplicaWhenOneDies) {
  FakeEnvServer a(log_, std::chrono::milliseconds(3));
  FakeEnvServer b(log_, std::chrono::milliseconds(3));
  ASSERT_TRUE(a.ok() && b.ok());
  EnvClientOptions env_options;
  env_options.max_attempts = 8;
  env_options.initial_backoff = absl::Milliseconds(20);
  EnvClient env(a.address() + "," + b.address(), env_options);
  RolloutOptions options;
  options.concurrency = 6;
  options.max_new_tokens = 3;
  Rollout rollout(tokenizer_.get(), &env, options);
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 13, im_end_);
  auto specs = Specs("fake_6_3", 6);
  absl::StatusOr<std::vector<EpisodeResult>> results;
  std::thread run([&] { results = rollout.Run(*policy, 1, specs); });
  while (a.service().steps_served < 6 && b.service().steps_served < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int served_by_a = a.service().steps_served;
  a.Kill();  // mid-episode: every episode still has steps to go
  run.join();
  ASSERT_TRUE(results.ok());
  EXPECT_GT(served_by_a, 0);
  int total_steps = 0;
  for (const auto& r : *results) {
    EXPECT_FALSE(r.trajectory.failed()) << r.trajectory.error();
    EXPECT_EQ(r.trajectory.finish_reason(), "done");
    EXPECT_EQ(r.trajectory.turns_size(), 6);
    total_steps += 18;
  }
  // A step served by A whose reply was lost to the shutdown is served again by B.
  EXPECT_GE(a.service().steps_served + b.service().steps_served, total_steps);
  EXPECT_GT(b.service().steps_served, total_steps / 2);
}

TEST_F(RolloutTest, DrainingReplicaIsRetriedElsewhere) {
  FakeEnvServer a(log_);
  FakeEnvServer b(log_);
  a.service().unavailable = true;
  EnvClientOptions env_options;
  env_options.initial_backoff = absl::Milliseconds(5);
  env_options.max_attempts = 10;
  EnvClient env(a.address() + "," + b.address(), env_options);
  Rollout rollout(tokenizer_.get(), &env, RolloutOptions{.max_new_tokens = 2});
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 14);
  auto results = rollout.Run(*policy, 1, Specs("fake_2_2", 3));
  ASSERT_TRUE(results.ok());
  for (const auto& r : *results) EXPECT_FALSE(r.trajectory.failed()) << r.trajectory.error();
  EXPECT_EQ(a.service().steps_served, 0);
  EXPECT_GT(env.retries(), 0);
}

TEST_F(RolloutTest, BudgetsEndEpisodesButDeliverThem) {
  FakeEnvServer server(log_);
  EnvClient env(server.address());
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 15);
  {
    Rollout rollout(tokenizer_.get(), &env,
                    RolloutOptions{.max_new_tokens = 3, .max_model_turns = 3});
    auto results = rollout.Run(*policy, 1, Specs("fake_5_2", 2));
    ASSERT_TRUE(results.ok());
    for (const auto& r : *results) {
      EXPECT_FALSE(r.trajectory.failed());
      EXPECT_EQ(r.trajectory.finish_reason(), "turn_budget");
      EXPECT_EQ(r.stats.generated_tokens(), 9u);  // 3 replies of 3 tokens
      EXPECT_EQ(r.trajectory.turns_size(), 2);    // turn 0 done, turn 1 open
      EXPECT_EQ(r.trajectory.turns(1).score(), 0.0);
    }
  }
  {
    const int64_t budget = 60;
    Rollout rollout(tokenizer_.get(), &env,
                    RolloutOptions{.max_new_tokens = 8, .max_episode_tokens = budget});
    auto results = rollout.Run(*policy, 1, Specs("fake_5_2", 2));
    ASSERT_TRUE(results.ok());
    for (const auto& r : *results) {
      EXPECT_FALSE(r.trajectory.failed());
      EXPECT_EQ(r.trajectory.finish_reason(), "token_budget");
      EXPECT_LE(r.trajectory.token_ids_size(), budget);
      EXPECT_GT(r.stats.generated_tokens(), 0u);
    }
  }
  {
    Rollout rollout(tokenizer_.get(), &env,
                    RolloutOptions{.max_new_tokens = 2, .max_episode_time = absl::ZeroDuration()});
    auto results = rollout.Run(*policy, 1, Specs("fake_5_2", 1));
    ASSERT_TRUE(results.ok());
    EXPECT_EQ((*results)[0].trajectory.finish_reason(), "time_budget");
    EXPECT_FALSE((*results)[0].trajectory.failed());
  }
}

TEST_F(RolloutTest, FailedEpisodesAreDeliveredAndAccounted) {
  FakeEnvServer server(log_);
  EnvClientOptions env_options;
  env_options.max_attempts = 2;
  env_options.initial_backoff = absl::Milliseconds(1);
  EnvClient env(server.address(), env_options);
  EnvClient dead("127.0.0.1:1", env_options);
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 16);
  Rollout rollout(tokenizer_.get(), &env, RolloutOptions{.max_new_tokens = 2});
  std::vector<EpisodeSpec> specs = Specs("fake_2_1", 3);
  specs[0].task_id = "invalid_2_1";   // Step: INVALID_ARGUMENT (tampered blob)
  specs[1].task_id = "no_such_task";  // StartEpisode: NOT_FOUND
  int delivered = 0;
  auto results = rollout.Run(*policy, 1, specs,
                             [&](const EpisodeSpec&, EpisodeResult&) { ++delivered; });
  ASSERT_TRUE(results.ok());
  EXPECT_EQ(delivered, 3);
  const auto& invalid = (*results)[0];
  EXPECT_TRUE(invalid.trajectory.failed());
  EXPECT_TRUE(invalid.stats.failed());
  EXPECT_EQ(invalid.trajectory.token_ids_size(), 0);
  EXPECT_EQ(invalid.trajectory.episode_id(), "L1/0");
  EXPECT_NE(invalid.trajectory.error().find("env server"), std::string::npos);
  EXPECT_NE(invalid.trajectory.error().find("(Step, attempt 1/2)"), std::string::npos)
      << invalid.trajectory.error();  // not retried
  EXPECT_NE(invalid.trajectory.error().find("tampered"), std::string::npos);
  EXPECT_NE((*results)[1].trajectory.error().find("StartEpisode"), std::string::npos);
  EXPECT_TRUE((*results)[1].trajectory.failed());
  EXPECT_FALSE((*results)[2].trajectory.failed());
  EXPECT_EQ((*results)[2].trajectory.finish_reason(), "done");

  // No env server at all: retried up to the bound, then failed with peer and phase.
  Rollout unreachable(tokenizer_.get(), &dead, RolloutOptions{.max_new_tokens = 2});
  auto none = unreachable.Run(*policy, 1, Specs("fake_1_1", 2));
  ASSERT_TRUE(none.ok());
  for (const auto& r : *none) {
    EXPECT_TRUE(r.trajectory.failed());
    EXPECT_EQ(r.trajectory.finish_reason(), "env_error");
    EXPECT_NE(r.trajectory.error().find("attempt 2/2"), std::string::npos) << r.trajectory.error();
  }
}

TEST_F(RolloutTest, CancelEndsEpisodesPromptly) {
  FakeEnvServer server(log_, std::chrono::milliseconds(20));
  EnvClient env(server.address());
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 17);
  Rollout rollout(tokenizer_.get(), &env, RolloutOptions{.concurrency = 2, .max_new_tokens = 2});
  std::atomic<bool> cancel{false};
  absl::StatusOr<std::vector<EpisodeResult>> results;
  std::thread run([&] { results = rollout.Run(*policy, 1, Specs("fake_50_5", 4), nullptr, &cancel); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  cancel = true;
  run.join();
  ASSERT_TRUE(results.ok());
  for (const auto& r : *results) {
    EXPECT_TRUE(r.trajectory.failed());
    EXPECT_EQ(r.trajectory.finish_reason(), "cancelled");
  }
}

TEST(KvBudgetTest, ParsesSizesAndFractions) {
  struct Case {
    const char* text;
    int64_t bytes;
    double fraction;
  };
  for (const Case& c : {Case{"", 0, 0}, Case{"0", 0, 0}, Case{"4GiB", int64_t{4} << 30, 0},
                        Case{"512 MiB", int64_t{512} << 20, 0}, Case{"1.5GB", 1500000000, 0},
                        Case{"1000000B", 1000000, 0}, Case{"2KiB", 2048, 0},
                        Case{"0.9", 0, 0.9}, Case{"1", 0, 1.0}, Case{"90%", 0, 0.9}}) {
    absl::StatusOr<KvBudget> b = ParseKvBudget(c.text);
    ASSERT_TRUE(b.ok()) << c.text << ": " << b.status();
    EXPECT_EQ(b->bytes, c.bytes) << c.text;
    EXPECT_DOUBLE_EQ(b->fraction, c.fraction) << c.text;
  }
  for (const char* bad : {"12", "-1GiB", "abc", "150%", "0%", "1e30GB", "GiB", "0.5B"}) {
    absl::StatusOr<KvBudget> b = ParseKvBudget(bad);
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(b.status().message().find(std::string("'") + bad + "'"), std::string::npos)
        << b.status();
  }
}

// The budget is reserved per episode: max_episode_tokens x KvBytesPerToken.
TEST_F(RolloutTest, KvBudgetSmallerThanOneEpisodeFailsBeforeStartingWithTheNumbers) {
  FakeEnvServer server(log_);
  EnvClient env(server.address());
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 18, im_end_);
  // 2 layers x 1 key/value head x head_dim 8 x (key + value) x 4 bytes (fp32).
  ASSERT_EQ(KvBytesPerToken(*policy), 2 * 1 * 8 * 2 * 4);
  const int64_t per_episode = 2048 * KvBytesPerToken(*policy);
  RolloutOptions options{.concurrency = 4, .max_new_tokens = 8, .max_episode_tokens = 2048};
  options.kv_budget.bytes = per_episode - 1;
  Rollout rollout(tokenizer_.get(), &env, options);
  int delivered = 0;
  auto results = rollout.Run(*policy, 1, Specs("fake_3_2", 2),
                             [&](const EpisodeSpec&, EpisodeResult&) { ++delivered; });
  ASSERT_EQ(results.status().code(), absl::StatusCode::kResourceExhausted) << results.status();
  const std::string message(results.status().message());
  EXPECT_NE(message.find(absl::StrCat("needs ", per_episode, " bytes")), std::string::npos)
      << message;
  EXPECT_NE(message.find("2048 tokens"), std::string::npos) << message;
  EXPECT_NE(message.find(absl::StrCat("KV budget is ", per_episode - 1, " bytes")),
            std::string::npos)
      << message;
  EXPECT_EQ(delivered, 0);
  {
    std::lock_guard<std::mutex> lock(log_->mu);
    EXPECT_TRUE(log_->openings.empty());  // no episode was started
  }

  // A fraction of memory that cannot even hold the parameters is the same kind of error.
  RolloutOptions tiny_fraction = options;
  tiny_fraction.kv_budget = KvBudget{.fraction = 1e-15};
  Rollout none_left(tokenizer_.get(), &env, tiny_fraction);
  auto left = none_left.Run(*policy, 1, Specs("fake_3_2", 1));
  EXPECT_EQ(left.status().code(), absl::StatusCode::kResourceExhausted) << left.status();
  EXPECT_NE(left.status().message().find("no KV budget left"), std::string::npos)
      << left.status();
}

// Within the budget long episodes wait for room instead of failing: with room for one episode
// (or two) and concurrency 4, every episode completes, never more than fit at once.
TEST_F(RolloutTest, WithinTheKvBudgetEpisodesQueueInsteadOfFailing) {
  FakeEnvServer server(log_);
  EnvClient env(server.address());
  auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 19, im_end_);
  const int64_t per_episode = 2048 * KvBytesPerToken(*policy);
  for (int fit : {1, 2, 0}) {  // 0: no budget
    SCOPED_TRACE(fit);
    RolloutOptions options{.concurrency = 4, .max_new_tokens = 4, .max_episode_tokens = 2048};
    options.kv_budget.bytes = fit * per_episode;
    Rollout rollout(tokenizer_.get(), &env, options);
    auto results = rollout.Run(*policy, 1, Specs("fake_2_1", 4));
    ASSERT_TRUE(results.ok()) << results.status();
    for (const auto& r : *results) {
      EXPECT_FALSE(r.trajectory.failed()) << r.trajectory.error();
      EXPECT_EQ(r.trajectory.finish_reason(), "done");
      EXPECT_GT(r.stats.generated_tokens(), 0u);
    }
    EXPECT_EQ(rollout.max_episodes_in_flight(), fit == 0 ? 4 : fit);
    EXPECT_EQ(rollout.max_kv_reserved_bytes(), fit * per_episode);
    EXPECT_EQ(rollout.kv_batch_splits(), 0);
  }
  // What the actor asks the coordinator for: as many episodes as fit, within concurrency.
  for (const auto& [budget, expected] : {std::pair{int64_t{0}, 4}, std::pair{2 * per_episode, 2},
                                         std::pair{per_episode - 1, 1},
                                         std::pair{100 * per_episode, 4}}) {
    RolloutOptions o{.concurrency = 4, .max_episode_tokens = 2048};
    o.kv_budget.bytes = budget;
    auto fits = Rollout(tokenizer_.get(), &env, o).EpisodesWithinBudget(*policy, 2048);
    ASSERT_TRUE(fits.ok()) << fits.status();
    EXPECT_EQ(*fits, expected) << budget;
  }
  // A budget as a fraction of (host) memory admits all four.
  RolloutOptions options{.concurrency = 4, .max_new_tokens = 4, .max_episode_tokens = 2048};
  options.kv_budget.fraction = 0.5;
  Rollout rollout(tokenizer_.get(), &env, options);
  auto results = rollout.Run(*policy, 1, Specs("fake_2_1", 4));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(rollout.max_episodes_in_flight(), 4);
  EXPECT_EQ(rollout.max_kv_reserved_bytes(), 4 * per_episode);
}

}  // namespace
}  // namespace envtune
