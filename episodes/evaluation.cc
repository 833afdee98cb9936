#include "episodes/evaluation.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/enum_label.h"
#include "envserver/decode.h"
#include "envserver/ground_truth_reply.h"
#include "envserver/prompts.h"
#include "episodes/conversation.h"
#include "episodes/task_selection.h"
#include "model/text/chat_template.h"

namespace envtune {
namespace {

using Json = nlohmann::ordered_json;

// ---------------------------------------------------------------------------------------------
// Environments.

class InProcessEnv : public EvalEnv {
 public:
  explicit InProcessEnv(const EpisodeEngine* engine) : engine_(engine) {}
  absl::StatusOr<v1::StartEpisodeResponse> Start(const std::string& task_id,
                                                 const v1::EpisodeOptions& options) override {
    return engine_->Start(task_id, options);
  }
  absl::StatusOr<v1::StepResponse> Step(const std::string& state,
                                        const std::string& output) override {
    return engine_->Step(state, output);
  }

 private:
  const EpisodeEngine* engine_;
};

class RemoteEnv : public EvalEnv {
 public:
  explicit RemoteEnv(EnvClient* client) : client_(client) {}
  absl::StatusOr<v1::StartEpisodeResponse> Start(const std::string& task_id,
                                                 const v1::EpisodeOptions& options) override {
    v1::StartEpisodeRequest r;
    r.set_task_id(task_id);
    *r.mutable_options() = options;
    return client_->StartEpisode(r);
  }
  absl::StatusOr<v1::StepResponse> Step(const std::string& state,
                                        const std::string& output) override {
    v1::StepRequest r;
    r.set_episode_state(state);
    r.set_model_output(output);
    return client_->Step(r);
  }

 private:
  EnvClient* client_;
};

// Runs f(0..n-1) on up to `threads` threads.
template <typename F>
void ParallelFor(size_t n, int threads, const F& f) {
  const size_t t = std::min<size_t>(n, static_cast<size_t>(std::max(1, threads)));
  if (t <= 1) {
    for (size_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  workers.reserve(t);
  for (size_t k = 0; k < t; ++k) {
    workers.emplace_back([&] {
      for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) f(i);
    });
  }
  for (std::thread& w : workers) w.join();
}

Json MessageJson(const v1::ChatMessage& m) {
  Json j = {{"role", m.role()}, {"content", m.content()}};
  if (!m.name().empty()) j["name"] = m.name();
  return j;
}

absl::StatusOr<Json> ToolsJson(const google::protobuf::RepeatedPtrField<std::string>& tools) {
  Json out = Json::array();
  for (const std::string& t : tools) {
    Json parsed = Json::parse(t, nullptr, false);
    if (parsed.is_discarded()) return absl::InternalError("env sent a tool schema that is not JSON");
    out.push_back(std::move(parsed));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Policies.

class GroundTruthPolicy : public EvalPolicy {
 public:
  explicit GroundTruthPolicy(const TaskCatalog* catalog) : catalog_(catalog) {}
  std::string name() const override { return "ground_truth"; }
  absl::StatusOr<std::vector<EvalReply>> Reply(const std::vector<EvalEpisodeView>& batch) override {
    std::vector<EvalReply> out;
    for (const EvalEpisodeView& v : batch) {
      EvalReply r;
      const bool in_range = v.turn >= 0 && v.turn < static_cast<int>(v.task->ground_truth.size());
      const std::vector<std::string>* gt = in_range ? &v.task->ground_truth[v.turn] : nullptr;
      if (gt != nullptr && !gt->empty() && v.step_in_turn == 0) {
        absl::StatusOr<std::string> text = GroundTruthCallsReply(*catalog_, *v.task, v.format, *gt);
        if (!text.ok()) return text.status();
        r.text = std::move(*text);
      } else {
        r.text = GroundTruthAnswerReply(v.format, gt == nullptr || gt->empty());
      }
      out.push_back(std::move(r));
    }
    return out;
  }

 private:
  const TaskCatalog* catalog_;
};

class NoCallsPolicy : public EvalPolicy {
 public:
  std::string name() const override { return "no_calls"; }
  absl::StatusOr<std::vector<EvalReply>> Reply(const std::vector<EvalEpisodeView>& batch) override {
    std::vector<EvalReply> out(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      out[i].text = GroundTruthAnswerReply(batch[i].format, /*cannot_serve=*/true);
    }
    return out;
  }
};

class ModelPolicy : public EvalPolicy {
 public:
  ModelPolicy(PolicyImpl* policy, const Tokenizer* tokenizer, ModelPolicyOptions options)
      : policy_(policy), tokenizer_(tokenizer), options_(std::move(options)) {}
  std::string name() const override { return "model"; }

  absl::StatusOr<std::vector<EvalReply>> Reply(const std::vector<EvalEpisodeView>& batch) override {
    std::vector<EvalReply> out(batch.size());
    std::vector<std::vector<int64_t>> prompts;
    std::vector<SequenceCachePtr> caches;
    std::vector<size_t> rows;
    std::vector<int64_t> caps;
    const Json null_tools;
    for (size_t i = 0; i < batch.size(); ++i) {
      const EvalEpisodeView& v = batch[i];
      const Json& tools =
          v.format == v1::OUTPUT_FORMAT_HERMES && v.tools != nullptr ? *v.tools : null_tools;
      // The whole conversation afresh, as BFCL's runner prompts a model each step.
      absl::StatusOr<std::vector<TokenId>> ids = EncodeChat(*tokenizer_, *v.messages, tools);
      if (!ids.ok()) return ids.status();
      out[i].prompt_tokens = static_cast<int64_t>(ids->size());
      const int64_t room = options_.max_context_tokens - static_cast<int64_t>(ids->size());
      if (room < 1) {
        out[i].context_exceeded = true;
        continue;
      }
      rows.push_back(i);
      prompts.emplace_back(ids->begin(), ids->end());
      caches.push_back(std::move(caches_[v.task]));  // Generate consumes it
      caps.push_back(std::min(room, options_.generation.max_new_tokens));
    }
    if (rows.empty()) return out;
    GenerationOptions g = options_.generation;
    g.max_new_tokens = *std::max_element(caps.begin(), caps.end());
    // Sampled evaluation: a fresh, reproducible seed per batch (greedy ignores it).
    g.seed = options_.generation.seed + 0x9E3779B97F4A7C15ULL * ++batches_;
    absl::StatusOr<std::vector<GenerationResult>> gen =
        Generate(*policy_, prompts, g, nullptr, &caches);
    if (!gen.ok()) return gen.status();
    // Each episode replies in every round until it ends: keep only this batch's caches.
    caches_.clear();
    for (size_t k = 0; k < rows.size(); ++k) caches_[batch[rows[k]].task] = std::move(caches[k]);
    for (size_t k = 0; k < rows.size(); ++k) {
      GenerationResult& res = (*gen)[k];
      if (static_cast<int64_t>(res.token_ids.size()) > caps[k]) res.token_ids.resize(caps[k]);
      std::vector<TokenId> ids(res.token_ids.begin(), res.token_ids.end());
      out[rows[k]].generated_tokens = static_cast<int64_t>(ids.size());
      if (!ids.empty() && std::find(g.stop_token_ids.begin(), g.stop_token_ids.end(),
                                    static_cast<int64_t>(ids.back())) != g.stop_token_ids.end()) {
        ids.pop_back();
      }
      absl::StatusOr<std::string> text = tokenizer_->Decode(ids, {.skip_unknown_ids = true});
      if (!text.ok()) return text.status();
      out[rows[k]].text = std::move(*text);
    }
    return out;
  }

 private:
  PolicyImpl* policy_;
  const Tokenizer* tokenizer_;
  ModelPolicyOptions options_;
  uint64_t batches_ = 0;
  // Keys/values of each running episode's conversation (the next prompt extends it).
  std::map<const BfclTask*, SequenceCachePtr> caches_;
};

// ---------------------------------------------------------------------------------------------
// The episode loop.

struct Running {
  size_t index = 0;
  const BfclTask* task = nullptr;
  std::string state;
  TaskEvaluation result;
  Json tools;  // Hermes schemas (null otherwise)
  int turn = 0;
  int step_in_turn = 0;
  bool done = false;
};

std::vector<CallList> PrepareSteps(v1::OutputFormat format, const std::vector<std::string>& replies) {
  if (format == v1::OUTPUT_FORMAT_HERMES) {
    std::vector<CallList> steps;
    for (const std::string& r : replies) {
      DecodeResult d = DecodeHermes(r);
      if (d.kind == DecodeResult::Kind::kCalls) steps.push_back(d.calls);
    }
    return DropEmptySteps(steps);
  }
  return PrepareTurnSteps(format == v1::OUTPUT_FORMAT_BFCL_PROMPTING ? DecodeMode::kBfclPrompting
                                                                     : DecodeMode::kEnvTuning,
                          replies);
}

}  // namespace

std::unique_ptr<EvalEnv> InProcessEvalEnv(const EpisodeEngine* engine) {
  return std::make_unique<InProcessEnv>(engine);
}
std::unique_ptr<EvalEnv> RemoteEvalEnv(EnvClient* client) {
  return std::make_unique<RemoteEnv>(client);
}

ModelPolicyOptions DefaultModelPolicyOptions() {
  ModelPolicyOptions o;
  o.generation.do_sample = false;
  o.generation.max_new_tokens = 1024;
  return o;
}

absl::StatusOr<std::unique_ptr<EvalPolicy>> ModelEvalPolicy(PolicyImpl* policy,
                                                            const Tokenizer* tokenizer,
                                                            ModelPolicyOptions options) {
  if (policy == nullptr || tokenizer == nullptr) {
    return absl::InvalidArgumentError("model policy: a policy and a tokenizer are required");
  }
  std::optional<TokenId> im_end = tokenizer->TokenToId(kImEnd);
  if (!im_end.has_value()) return absl::InvalidArgumentError("the tokenizer has no <|im_end|>");
  if (std::find(options.generation.stop_token_ids.begin(), options.generation.stop_token_ids.end(),
                *im_end) == options.generation.stop_token_ids.end()) {
    options.generation.stop_token_ids.push_back(*im_end);
  }
  if (options.max_context_tokens < 2 || options.generation.max_new_tokens < 1) {
    return absl::InvalidArgumentError("model policy: max_context_tokens >= 2 and max_new_tokens >= 1");
  }
  return std::unique_ptr<EvalPolicy>(new ModelPolicy(policy, tokenizer, std::move(options)));
}

std::unique_ptr<EvalPolicy> GroundTruthEvalPolicy(const TaskCatalog* catalog) {
  return std::make_unique<GroundTruthPolicy>(catalog);
}
std::unique_ptr<EvalPolicy> NoCallsEvalPolicy() { return std::make_unique<NoCallsPolicy>(); }

absl::StatusOr<std::vector<TaskEvaluation>> EvaluateTasks(EvalPolicy& policy, EvalEnv& env,
                                                          const TaskCatalog& catalog,
                                                          const std::vector<std::string>& task_ids,
                                                          const EvalOptions& options,
                                                          const EvalProgressFn& progress) {
  if (options.batch_size < 1 || options.max_replies < 1 || options.max_steps_per_turn < 1) {
    return absl::InvalidArgumentError("eval: batch_size, max_replies, max_steps_per_turn must be >= 1");
  }
  std::vector<const BfclTask*> tasks;
  for (const std::string& id : task_ids) {
    const BfclTask* t = catalog.Find(id);
    if (t == nullptr) return absl::NotFoundError(absl::StrCat("eval: unknown task id '", id, "'"));
    tasks.push_back(t);
  }
  SandboxContext context;
  context.long_context_constants = &catalog.long_context_constants();
  CheckerOptions checker;
  checker.model_name = options.checker_model_name;

  v1::EpisodeOptions eo;
  eo.set_output_format(options.format);
  eo.set_reward_kind(v1::REWARD_KIND_PROGRESS);
  eo.set_augment_probability(0.0);
  eo.set_max_steps_per_turn(options.max_steps_per_turn);
  eo.set_bfcl_eval_semantics(true);
  eo.set_seed(options.seed);

  const size_t n = tasks.size();
  std::vector<TaskEvaluation> results(n);
  size_t finished = 0, next = 0;
  std::vector<std::unique_ptr<Running>> active;

  auto finish = [&](Running& r, std::string reason, std::string error) {
    r.done = true;
    TaskEvaluation& e = r.result;
    e.finish_reason = std::move(reason);
    e.error = std::move(error);
    if (r.tools.is_array()) e.tools = r.tools;
    if (e.finish_reason == "policy_error" || e.finish_reason == "env_error") {
      e.verdict = InferenceErrorVerdict();
      if (e.finish_reason == "env_error") e.verdict.error_message = e.error;
    } else {
      std::vector<std::vector<CallList>> turns;
      for (const std::vector<std::string>& replies : e.turn_replies) {
        turns.push_back(PrepareSteps(options.format, replies));
      }
      absl::StatusOr<CheckerVerdict> v = CheckMultiTurn(*r.task, turns, &context, checker);
      if (v.ok()) {
        e.verdict = *std::move(v);
      } else {
        e.verdict = CheckerVerdict{};
        e.verdict.error_type = "internal";
        e.verdict.error_message = std::string(v.status().message());
      }
    }
    results[r.index] = std::move(e);
    ++finished;
    if (progress) progress(results[r.index], finished, n);
  };

  while (finished < n) {
    // Start new episodes up to the batch size.
    std::vector<std::unique_ptr<Running>> fresh;
    while (active.size() + fresh.size() < static_cast<size_t>(options.batch_size) && next < n) {
      auto r = std::make_unique<Running>();
      r->index = next;
      r->task = tasks[next];
      r->result.task_id = tasks[next]->id;
      r->result.category = ShortCategory(tasks[next]->category);
      fresh.push_back(std::move(r));
      ++next;
    }
    std::vector<absl::StatusOr<v1::StartEpisodeResponse>> started(
        fresh.size(), absl::UnknownError("not started"));
    ParallelFor(fresh.size(), options.env_threads,
                [&](size_t i) { started[i] = env.Start(fresh[i]->task->id, eo); });
    for (size_t i = 0; i < fresh.size(); ++i) {
      Running& r = *fresh[i];
      if (!started[i].ok()) {
        finish(r, "env_error", std::string(started[i].status().message()));
        continue;
      }
      r.state = std::move(*started[i]->mutable_episode_state());
      for (const v1::ChatMessage& m : started[i]->messages()) r.result.messages.push_back(MessageJson(m));
      if (options.format == v1::OUTPUT_FORMAT_HERMES) {
        absl::StatusOr<Json> tools = ToolsJson(started[i]->tools_json());
        if (!tools.ok()) {
          finish(r, "env_error", std::string(tools.status().message()));
          continue;
        }
        r.tools = std::move(*tools);
      }
      active.push_back(std::move(fresh[i]));
    }
    if (active.empty()) continue;

    // One policy batch for every active episode, in task order.
    std::vector<EvalEpisodeView> views;
    for (const auto& r : active) {
      EvalEpisodeView v;
      v.task = r->task;
      v.format = options.format;
      v.turn = r->turn;
      v.step_in_turn = r->step_in_turn;
      v.messages = &r->result.messages;
      v.tools = &r->tools;
      views.push_back(v);
    }
    absl::StatusOr<std::vector<EvalReply>> replies = policy.Reply(views);
    if (replies.ok() && replies->size() != active.size()) {
      replies = absl::InternalError("policy returned the wrong number of replies");
    }
    std::vector<Running*> stepping;
    for (size_t i = 0; i < active.size(); ++i) {
      Running& r = *active[i];
      if (!replies.ok()) {
        finish(r, "policy_error", std::string(replies.status().message()));
        continue;
      }
      EvalReply& reply = (*replies)[i];
      if (reply.context_exceeded) {
        finish(r, "context_budget", "");
        continue;
      }
      r.result.generated_tokens += reply.generated_tokens;
      ++r.result.replies;
      if (r.result.turn_replies.size() <= static_cast<size_t>(r.turn)) {
        r.result.turn_replies.resize(r.turn + 1);
      }
      r.result.turn_replies[r.turn].push_back(reply.text);
      r.result.messages.push_back(Json{{"role", "assistant"}, {"content", reply.text}});
      stepping.push_back(&r);
    }
    std::vector<absl::StatusOr<v1::StepResponse>> stepped(stepping.size(),
                                                          absl::UnknownError("not stepped"));
    ParallelFor(stepping.size(), options.env_threads, [&](size_t i) {
      Running& r = *stepping[i];
      stepped[i] = env.Step(r.state, r.result.messages.back()["content"].get<std::string>());
    });
    for (size_t i = 0; i < stepping.size(); ++i) {
      Running& r = *stepping[i];
      if (!stepped[i].ok()) {
        finish(r, "env_error", std::string(stepped[i].status().message()));
        continue;
      }
      v1::StepResponse& s = *stepped[i];
      r.state = std::move(*s.mutable_episode_state());
      for (const v1::ChatMessage& m : s.observation()) r.result.messages.push_back(MessageJson(m));
      if (s.tools_json_size() > 0 && options.format == v1::OUTPUT_FORMAT_HERMES) {
        absl::StatusOr<Json> tools = ToolsJson(s.tools_json());
        if (tools.ok()) r.tools = std::move(*tools);
      }
      r.result.progress = s.components().progress();
      if (s.turn_ended()) r.result.turn_scores.push_back(s.turn_score());
      if (s.episode_ended()) {
        finish(r,
               s.turn_ended() && s.turn_score().end_reason() == v1::TURN_END_REASON_FORCE_QUIT
                   ? "force_quit"
                   : "done",
               "");
        continue;
      }
      if (s.turn_ended()) {
        r.turn = static_cast<int>(s.turn_index()) + 1;
        r.step_in_turn = 0;
      } else {
        ++r.step_in_turn;
      }
      if (r.result.replies >= options.max_replies) finish(r, "reply_budget", "");
    }
    active.erase(std::remove_if(active.begin(), active.end(),
                                [](const std::unique_ptr<Running>& r) { return r->done; }),
                 active.end());
  }
  return results;
}

absl::StatusOr<TaskEvaluation> EvaluateTask(EvalPolicy& policy, EvalEnv& env,
                                            const TaskCatalog& catalog, const std::string& task_id,
                                            const EvalOptions& options) {
  absl::StatusOr<std::vector<TaskEvaluation>> r =
      EvaluateTasks(policy, env, catalog, {task_id}, options);
  if (!r.ok()) return r.status();
  return std::move((*r)[0]);
}

v1::EpisodeStats EvalEpisodeStats(const TaskEvaluation& result, const std::string& episode_id,
                                  uint64_t policy_version) {
  v1::EpisodeStats st;
  st.set_episode_id(episode_id);
  st.set_reward(result.progress);
  st.set_progress(result.progress);
  st.set_valid(result.verdict.valid);
  st.set_generated_tokens(static_cast<uint32_t>(std::max<int64_t>(0, result.generated_tokens)));
  st.set_policy_version(policy_version);
  st.set_failed(result.finish_reason == "env_error" || result.finish_reason == "policy_error");
  return st;
}

Json TaskEvaluationJson(const TaskEvaluation& r) {
  Json j;
  j["id"] = r.task_id;
  j["category"] = r.category;
  j["valid"] = r.verdict.valid;
  j["error_type"] = r.verdict.error_type;
  j["error_message"] = r.verdict.error_message;
  j["error_turn"] = r.verdict.error_turn;
  j["progress"] = r.progress;
  j["checker_reward"] = r.verdict.reward;
  j["finish_reason"] = r.finish_reason;
  if (!r.error.empty()) j["error"] = r.error;
  j["replies"] = r.replies;
  j["generated_tokens"] = r.generated_tokens;
  j["turn_replies"] = r.turn_replies;
  Json scores = Json::array();
  for (const v1::TurnScore& s : r.turn_scores) {
    scores.push_back(Json{
        {"turn", s.turn_index()},
        {"score", s.score()},
        {"cannot_serve", s.cannot_serve()},
        {"state_ok", s.state_ok()},
        {"response_ok", s.response_ok()},
        {"end_reason", EnumLabel(v1::TurnEndReason_Name(s.end_reason()), "TURN_END_REASON_")}});
  }
  j["turn_scores"] = std::move(scores);
  j["messages"] = r.messages;
  if (r.tools.is_array()) j["tools"] = r.tools;
  return j;
}

}  // namespace envtune
