// (slow: BFCL system prompts are 4-8k tokens, re-prefilled every reply.)
// Rollout against the real EnvService (envserver/env_service.h) on BFCL tasks, two replicas,
// with a tiny random policy: its replies are mostly malformed, which exercises format-error
// observations, forced turn ends and turn scoring. Checks the trajectories' structure (mask,
// log-probs, spans inside the sequence, prompt = the env's opening rendered with the chat
// template) and that the episodes end by the env ("done") or by their budgets.
#include <gtest/gtest.h>

#include <filesystem>

#include "actor/rollout.h"
#include "envserver/env_service.h"
#include "model/text/chat_template.h"
#include "tests/actor/tiny_policy.h"

namespace envtune {
namespace {

TEST(RealEnvRollout, BfclEpisodesOnTwoReplicas) {
  auto tokenizer = testing_actor::LoadTokenizer();
  if (tokenizer == nullptr) GTEST_SKIP() << "tokenizer not found";
  const std::string data_dir = testing_actor::SourceDir() + "/data";
  std::error_code ec;
  if (!std::filesystem::exists(data_dir + "/bfcl", ec)) GTEST_SKIP() << "no " << data_dir;
  EnvServiceOptions env_options;
  env_options.data_dir = data_dir;
  env_options.engine.hmac_key = "actor-test-key";
  auto a = EnvServer::Start(env_options, "127.0.0.1:0");
  auto b = EnvServer::Start(env_options, "127.0.0.1:0");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EnvClient env("127.0.0.1:" + std::to_string((*a)->port()) + ",127.0.0.1:" +
                std::to_string((*b)->port()));

  RolloutOptions options;
  options.concurrency = 4;
  options.max_new_tokens = 16;
  options.max_model_turns = 12;
  options.max_episode_tokens = 8192;  // eager attention over long BFCL prompts is the cost
  Rollout rollout(tokenizer.get(), &env, options);
  const TokenId im_end = *tokenizer->TokenToId(kImEnd);
  auto policy = testing_actor::TinyPolicy(tokenizer->vocab_size(), 31, im_end, 2.0);

  std::vector<EpisodeSpec> specs;
  const char* tasks[] = {"multi_turn_base_0", "multi_turn_miss_func_0", "multi_turn_base_1",
                         "multi_turn_miss_param_0"};
  for (int i = 0; i < 4; ++i) {
    EpisodeSpec s;
    s.episode_id = "R/" + std::to_string(i);
    s.lease_id = s.group_id = "R";
    s.group_size = 4;
    s.task_id = tasks[i];
    s.stage = 2;
    s.options.set_reward_kind(v1::REWARD_KIND_PROGRESS);
    s.options.set_augment_probability(i % 2);
    s.options.set_max_steps_per_turn(1);
    s.options.set_seed(i);
    specs.push_back(s);
  }
  auto results = rollout.Run(*policy, 3, specs);
  ASSERT_TRUE(results.ok()) << results.status();
  for (size_t i = 0; i < results->size(); ++i) {
    const v1::Trajectory& t = (*results)[i].trajectory;
    SCOPED_TRACE(t.task_id());
    ASSERT_FALSE(t.failed()) << t.error();
    EXPECT_TRUE(t.finish_reason() == "done" || t.finish_reason() == "turn_budget" ||
                t.finish_reason() == "token_budget")
        << t.finish_reason();
    EXPECT_EQ(t.augmented(), i % 2 == 1);
    const int n = t.token_ids_size();
    ASSERT_EQ(t.loss_mask().size(), static_cast<size_t>(n));
    ASSERT_EQ(t.behaviour_logprobs_size(), n);
    ASSERT_GT(t.prompt_tokens(), 0u);
    // The prompt is the env's opening rendered once with the chat template.
    v1::StartEpisodeRequest start;
    start.set_task_id(t.task_id());
    *start.mutable_options() = specs[i].options;
    auto opened = (*a)->core().StartEpisode(start);
    ASSERT_TRUE(opened.ok());
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    for (const auto& m : opened->messages()) {
      messages.push_back({{"role", m.role()}, {"content", m.content()}});
    }
    auto prompt = tokenizer->Encode(*RenderQwen25Chat(messages, nullptr, true));
    ASSERT_TRUE(prompt.ok());
    ASSERT_EQ(prompt->size(), t.prompt_tokens());
    EXPECT_TRUE(std::equal(prompt->begin(), prompt->end(), t.token_ids().begin()));
    for (int k = 0; k < n; ++k) {
      if (t.loss_mask()[k] == '\0') {
        EXPECT_EQ(t.behaviour_logprobs(k), 0.0f);
      } else {
        EXPECT_LE(t.behaviour_logprobs(k), 0.0f);
        EXPECT_GE(k, static_cast<int>(t.prompt_tokens()));
      }
    }
    std::cout << t.task_id() << ": " << t.prompt_tokens() << " prompt tokens, " << n
              << " tokens, " << t.turns_size() << " turn spans, finish " << t.finish_reason()
              << ", reward " << t.reward() << "\n";
    if ((*results)[i].stats.generated_tokens() > 0) ASSERT_GT(t.turns_size(), 0);
    for (const auto& span : t.turns()) {
      EXPECT_LT(span.token_begin(), span.token_end());
      EXPECT_LE(span.token_end(), static_cast<uint32_t>(n));
    }
    if (t.finish_reason() == "done") EXPECT_GE(t.reward(), 0.0);
  }
}

}  // namespace
}  // namespace envtune
