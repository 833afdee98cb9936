#include "actor/evaluation.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/enum_label.h"
#include "envserver/decode.h"
#include "envserver/prompts.h"
#include "envserver/pyparse.h"
#include "envserver/pyvalue.h"
#include "envserver/reply_format.h"
#include "model/cli.h"
#include "model/device.h"
#include "model/qwen2.h"
#include "model/text/chat_template.h"
#include "model/text/text_tools.h"

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
// Ground-truth replies.

// {"name", "arguments"} of a BFCL ground-truth call; positionals named after the doc's params.
absl::StatusOr<std::pair<std::string, PyDict>> GroundTruthCall(const TaskCatalog& catalog,
                                                               const BfclTask& task,
                                                               const std::string& call) {
  absl::StatusOr<PyNodePtr> node = ParsePyExpression(call);
  if (!node.ok()) return node.status();
  const PyNode& n = **node;
  if (n.kind != PyNodeKind::kCall || n.a == nullptr || n.a->kind != PyNodeKind::kName) {
    return absl::InvalidArgumentError(absl::StrCat("ground truth is not a plain call: ", call));
  }
  const std::string name = n.a->text;
  PyDict args;
  if (!n.elts.empty()) {
    std::vector<std::string> params;
    const PyValue& docs = catalog.FunctionDocs(catalog.ClassOfFunction(task, name));
    if (docs.type() == PyValue::Type::kList) {
      for (const PyValue& d : docs.items()) {
        if (d.type() != PyValue::Type::kDict) continue;
        const PyValue* dn = d.dict().Find("name");
        if (dn == nullptr || dn->type() != PyValue::Type::kStr || dn->as_str() != name) continue;
        const PyValue* ps = d.dict().Find("parameters");
        const PyValue* props =
            ps != nullptr && ps->type() == PyValue::Type::kDict ? ps->dict().Find("properties") : nullptr;
        if (props == nullptr || props->type() != PyValue::Type::kDict) break;
        for (const auto& [k, v] : props->dict()) params.push_back(k.as_str());
        break;
      }
    }
    if (params.size() < n.elts.size()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot name the positional arguments of ", call));
    }
    for (size_t i = 0; i < n.elts.size(); ++i) {
      absl::StatusOr<PyValue> v = EvalPyLiteral(*n.elts[i]);
      if (!v.ok()) return v.status();
      args.Set(params[i], *std::move(v));
    }
  }
  for (const PyKeyword& kw : n.keywords) {
    if (!kw.arg.has_value()) return absl::InvalidArgumentError(absl::StrCat("** in ", call));
    absl::StatusOr<PyValue> v = EvalPyLiteral(*kw.value);
    if (!v.ok()) return v.status();
    args.Set(*kw.arg, *std::move(v));
  }
  return std::make_pair(name, std::move(args));
}

std::string CallObjectJson(const std::string& name, const PyDict& args) {
  PyDict obj;
  obj.Set("name", PyValue::Str(name));
  obj.Set("arguments", PyValue::Dict(args));
  JsonDumpsOptions o;
  o.ensure_ascii = false;
  return PyValue::Dict(std::move(obj)).JsonDumps(o);
}

std::string CallNames(const std::vector<std::string>& names) { return absl::StrJoin(names, ", "); }

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
      absl::StatusOr<std::string> text = RenderQwen25Chat(*v.messages, tools, true);
      if (!text.ok()) return text.status();
      absl::StatusOr<std::vector<TokenId>> ids = tokenizer_->Encode(*text);
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

absl::StatusOr<std::string> GroundTruthCallsReply(const TaskCatalog& catalog, const BfclTask& task,
                                                  v1::OutputFormat format,
                                                  const std::vector<std::string>& calls) {
  std::vector<std::pair<std::string, PyDict>> parsed;
  std::vector<std::string> names;
  for (const std::string& c : calls) {
    absl::StatusOr<std::pair<std::string, PyDict>> p = GroundTruthCall(catalog, task, c);
    if (!p.ok()) return p.status();
    names.push_back(p->first);
    parsed.push_back(*std::move(p));
  }
  switch (format) {
    case v1::OUTPUT_FORMAT_BFCL_PROMPTING: {
      std::vector<std::string> parts;
      for (const auto& [name, args] : parsed) {
        std::vector<std::string> kv;
        for (const auto& [k, v] : args) kv.push_back(absl::StrCat(k.as_str(), "=", v.Repr()));
        parts.push_back(absl::StrCat(name, "(", absl::StrJoin(kv, ", "), ")"));
      }
      return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    }
    case v1::OUTPUT_FORMAT_HERMES: {
      std::vector<std::string> blocks;
      for (const auto& [name, args] : parsed) {
        blocks.push_back(absl::StrCat("<tool_call>\n", CallObjectJson(name, args), "\n</tool_call>"));
      }
      return absl::StrJoin(blocks, "\n");
    }
    default: {
      std::vector<std::string> objs;
      for (const auto& [name, args] : parsed) objs.push_back(CallObjectJson(name, args));
      return absl::StrCat("<think>To do this I call ", CallNames(names), ".</think>\n<tool_call>[",
                          absl::StrJoin(objs, ", "), "]</tool_call>");
    }
  }
}

std::string GroundTruthAnswerReply(v1::OutputFormat format, bool cannot_serve) {
  const char* text = cannot_serve
                         ? "I cannot complete this request with the functions available to me."
                         : "I have completed the requested operations.";
  if (format == v1::OUTPUT_FORMAT_ENVTUNING || format == v1::OUTPUT_FORMAT_UNSPECIFIED) {
    return absl::StrCat("<think>",
                        cannot_serve ? "No available function can do this." : "The task is done.",
                        "</think>\n<answer>", text, "</answer>");
  }
  return text;
}

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

EvalReport BuildEvalReport(const std::vector<TaskEvaluation>& results) {
  EvalReport rep;
  std::map<std::string, double> progress_sum;
  double all_progress = 0;
  for (const TaskEvaluation& r : results) {
    EvalReport::Row& row = rep.categories[r.category];
    ++row.tasks;
    if (r.verdict.valid) ++row.correct;
    progress_sum[r.category] += r.progress;
    ++rep.overall_tasks.tasks;
    if (r.verdict.valid) ++rep.overall_tasks.correct;
    all_progress += r.progress;
    if (!r.verdict.valid) ++rep.failure_types[r.verdict.error_type.empty() ? "unknown" : r.verdict.error_type];
    ++rep.finish_reasons[r.finish_reason];
  }
  double acc_sum = 0;
  for (auto& [cat, row] : rep.categories) {
    row.accuracy = row.tasks > 0 ? static_cast<double>(row.correct) / row.tasks : 0.0;
    row.mean_progress = row.tasks > 0 ? progress_sum[cat] / row.tasks : 0.0;
    acc_sum += row.accuracy;
  }
  rep.overall_accuracy = rep.categories.empty() ? 0.0 : acc_sum / rep.categories.size();
  if (rep.overall_tasks.tasks > 0) {
    rep.overall_tasks.accuracy = static_cast<double>(rep.overall_tasks.correct) / rep.overall_tasks.tasks;
    rep.overall_tasks.mean_progress = all_progress / rep.overall_tasks.tasks;
  }
  return rep;
}

namespace {
// Categories in BFCL's order, then any other names.
std::vector<std::string> OrderedCategories(const EvalReport& report) {
  std::vector<std::string> order;
  for (const std::string& c : TaskCatalog::Categories()) {
    std::string s = ShortCategory(c);
    if (report.categories.count(s)) order.push_back(s);
  }
  for (const auto& [c, row] : report.categories) {
    if (std::find(order.begin(), order.end(), c) == order.end()) order.push_back(c);
  }
  return order;
}
Json RowJson(const EvalReport::Row& r) {
  return Json{{"tasks", r.tasks}, {"correct", r.correct}, {"accuracy", r.accuracy},
              {"mean_progress", r.mean_progress}};
}
}  // namespace

Json EvalReportJson(const EvalReport& report, const Json& meta) {
  Json j;
  j["meta"] = meta;
  Json cats = Json::object();
  for (const std::string& c : OrderedCategories(report)) cats[c] = RowJson(report.categories.at(c));
  j["categories"] = std::move(cats);
  Json overall = RowJson(report.overall_tasks);
  overall["accuracy_unweighted"] = report.overall_accuracy;
  j["overall"] = std::move(overall);
  j["failure_types"] = report.failure_types;
  j["finish_reasons"] = report.finish_reasons;
  return j;
}

std::string EvalReportMarkdown(const EvalReport& report, const Json& meta) {
  std::string md = "# envtune evaluation\n\n";
  for (const auto& [k, v] : meta.items()) {
    absl::StrAppend(&md, "- ", k, ": ", v.is_string() ? v.get<std::string>() : v.dump(), "\n");
  }
  absl::StrAppend(&md, "\n| Category | Tasks | Correct | Accuracy | Mean progress |\n",
                  "|---|---:|---:|---:|---:|\n");
  for (const std::string& c : OrderedCategories(report)) {
    const EvalReport::Row& r = report.categories.at(c);
    absl::StrAppend(&md, absl::StrFormat("| %s | %d | %d | %.2f%% | %.4f |\n", c, r.tasks, r.correct,
                                         100.0 * r.accuracy, r.mean_progress));
  }
  const EvalReport::Row& o = report.overall_tasks;
  absl::StrAppend(&md, absl::StrFormat("| **overall** (mean of categories) | %d | %d | %.2f%% | %.4f |\n",
                                       o.tasks, o.correct, 100.0 * report.overall_accuracy,
                                       o.mean_progress));
  absl::StrAppend(&md, absl::StrFormat("| overall (per task) | %d | %d | %.2f%% | %.4f |\n", o.tasks,
                                       o.correct, 100.0 * o.accuracy, o.mean_progress));
  if (!report.failure_types.empty()) {
    absl::StrAppend(&md, "\n| Failure type | Tasks |\n|---|---:|\n");
    for (const auto& [t, c] : report.failure_types) absl::StrAppend(&md, "| ", t, " | ", c, " |\n");
  }
  absl::StrAppend(&md, "\n| Finish reason | Tasks |\n|---|---:|\n");
  for (const auto& [t, c] : report.finish_reasons) absl::StrAppend(&md, "| ", t, " | ", c, " |\n");
  return md;
}

namespace {
std::string StripMultiTurn(const std::string& s) {
  static const std::string kPrefix = "multi_turn_";
  return s.compare(0, kPrefix.size(), kPrefix) == 0 ? s.substr(kPrefix.size()) : s;
}
}  // namespace

std::string ShortCategory(std::string_view name) {
  std::string s(name);
  for (const std::string& c : TaskCatalog::Categories()) {
    if (s == c || absl::StartsWith(s, c + "_")) {
      // "multi_turn_base_3" -> "base"; guard against "multi_turn_miss_func" matching "..._miss"
      std::string rest = s.substr(c.size());
      if (rest.empty() || std::all_of(rest.begin() + 1, rest.end(), ::isdigit)) {
        return StripMultiTurn(c);
      }
    }
  }
  return StripMultiTurn(s);
}

absl::StatusOr<std::vector<std::string>> SelectEvalTasks(const TaskCatalog& catalog,
                                                         const std::string& data_dir,
                                                         const TaskSelection& sel) {
  std::set<std::string> cats;
  std::set<std::string> known;
  for (const std::string& c : TaskCatalog::Categories()) known.insert(ShortCategory(c));
  for (const std::string& c : sel.categories) {
    std::string s = ShortCategory(c);
    if (!known.count(s)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown category '", c, "' (expected base, miss_func, miss_param, long_context)"));
    }
    cats.insert(s);
  }
  std::optional<std::set<std::string>> subset_ids;
  if (sel.subset != "all" && !sel.subset.empty()) {
    subset_ids.emplace();
    for (absl::string_view part : absl::StrSplit(sel.subset, absl::ByAnyChar(",+"), absl::SkipEmpty())) {
      std::string name(absl::StripAsciiWhitespace(part));
      if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") !=
                              std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "bad subset '", name, "' (a split file name under splits/: train, val, test, ...)"));
      }
      std::string path = absl::StrCat(data_dir, "/splits/", name, ".txt");
      std::ifstream f(path);
      if (!f) return absl::NotFoundError(absl::StrCat("cannot read split file ", path));
      std::string line;
      while (std::getline(f, line)) {
        std::string id(absl::StripAsciiWhitespace(line));
        if (!id.empty()) subset_ids->insert(id);
      }
    }
  }
  std::optional<std::set<std::string>> file_ids;
  if (!sel.tasks_file.empty()) {
    std::ifstream f(sel.tasks_file);
    if (!f) return absl::NotFoundError(absl::StrCat("cannot read --tasks file ", sel.tasks_file));
    file_ids.emplace();
    std::string line;
    int line_no = 0;
    while (std::getline(f, line)) {
      ++line_no;
      std::string id(absl::StripAsciiWhitespace(line));
      if (id.empty() || id[0] == '#') continue;
      if (catalog.Find(id) == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(sel.tasks_file, ":", line_no, ": unknown task id '", id, "'"));
      }
      file_ids->insert(id);
    }
  }
  std::vector<std::string> out;
  for (const BfclTask& t : catalog.tasks()) {
    if (!cats.empty() && !cats.count(ShortCategory(t.category))) continue;
    if (subset_ids && !subset_ids->count(t.id)) continue;
    if (file_ids && !file_ids->count(t.id)) continue;
    out.push_back(t.id);
    if (sel.limit > 0 && static_cast<int>(out.size()) >= sel.limit) break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The command.

namespace {

constexpr char kEvalUsage[] =
    R"(envtune eval [--model DIR | --policy ground_truth|no_calls] [flags]
  BFCL V3 multi-turn evaluation (BFCL's runner semantics and checker).
  --model DIR            HF checkpoint directory (policy "model", the default)
  --policy P             model | ground_truth | no_calls
  --split LIST           categories: base,miss_func,miss_param,long_context (default all)
  --subset S             train | val | test | all, or a comma list (default val,test; with
                         --tasks and no --subset: all)
  --tasks FILE           one task id per line
  --limit N              first N selected tasks
  --format F             bfcl (prompting, default) | envtuning | hermes (native tool calls)
  --env LIST             remote env servers host:port[,host:port] or dns:///name:port
                         (default: in-process)
  --data_dir DIR         BFCL data and splits
  --out DIR              output directory (default eval_results): results.jsonl, report.json,
                         report.md
  --tokenizer DIR        default third_party/qwen-tokenizer
  --batch_size N         episodes in flight (default 16)
  --max_new_tokens N     per reply (default 1024)
  --max_context N        prompt + reply tokens (default 32768)
  --temperature T        0 = greedy (default); > 0 samples with --seed
  --top_k K --top_p P --seed S
  --dtype D --device D   policy dtype (float32 | bfloat16) and LibTorch device
  --env_threads N        parallel env calls (default 8)
  --quiet                no progress bar)";

int EvalUsage(std::ostream& err, const std::string& msg) {
  err << "envtune eval: " << msg << "\n\n" << kEvalUsage << "\n";
  return 2;
}

}  // namespace

const char* EvalCommandUsage() { return kEvalUsage; }

int RunEvalCommand(const std::vector<std::string>& args, const std::string& default_data_dir,
                   std::ostream& out, std::ostream& err) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "help" || args[0] == "-h")) {
    out << kEvalUsage << "\n";
    return 0;
  }
  absl::StatusOr<CliFlags> f = ParseCliFlags(
      args,
      {"model", "policy", "split", "subset", "tasks", "limit", "format", "env", "data_dir", "out",
       "tokenizer", "batch_size", "max_new_tokens", "max_context", "temperature", "top_k", "top_p",
       "seed", "dtype", "device", "env_threads"},
      {"quiet"});
  if (!f.ok()) return EvalUsage(err, std::string(f.status().message()));
  if (!f->positionals.empty()) return EvalUsage(err, absl::StrCat("unexpected argument '", f->positionals[0], "'"));
  const std::string policy_name = f->Get("policy", "model");
  if (policy_name != "model" && policy_name != "ground_truth" && policy_name != "no_calls") {
    return EvalUsage(err, absl::StrCat("unknown --policy '", policy_name, "'"));
  }
  if (policy_name == "model" && !f->Has("model")) return EvalUsage(err, "--model DIR is required");
  EvalOptions eo;
  absl::StatusOr<v1::OutputFormat> format = ParseOutputFormat(f->Get("format", "bfcl_prompting"));
  if (!format.ok()) return EvalUsage(err, absl::StrCat("--format: ", format.status().message()));
  eo.format = *format;
  absl::StatusOr<int64_t> limit = f->GetInt("limit", 0), batch = f->GetInt("batch_size", 16),
                          mnt = f->GetInt("max_new_tokens", 1024),
                          ctx = f->GetInt("max_context", 32768), top_k = f->GetInt("top_k", 0),
                          seed = f->GetInt("seed", 0), threads = f->GetInt("env_threads", 8);
  absl::StatusOr<double> temp = f->GetDouble("temperature", 0.0), top_p = f->GetDouble("top_p", 1.0);
  absl::StatusOr<bool> quiet = f->GetBool("quiet", false);
  for (const absl::Status& s : {limit.status(), batch.status(), mnt.status(), ctx.status(),
                                top_k.status(), seed.status(), threads.status(), temp.status(),
                                top_p.status(), quiet.status()}) {
    if (!s.ok()) return EvalUsage(err, std::string(s.message()));
  }
  if (*limit < 0 || *batch < 1 || *mnt < 1 || *ctx < 2 || *threads < 1 || *temp < 0) {
    return EvalUsage(err, "--limit >= 0, --batch_size/--max_new_tokens/--env_threads >= 1, "
                          "--max_context >= 2, --temperature >= 0");
  }
  eo.batch_size = static_cast<int>(*batch);
  eo.env_threads = static_cast<int>(*threads);
  eo.seed = static_cast<uint64_t>(*seed);

  const std::string data_dir = f->Get("data_dir", default_data_dir);
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(absl::StrCat(data_dir, "/bfcl"));
  if (!catalog.ok()) return EvalUsage(err, std::string(catalog.status().message()));
  TaskSelection sel;
  if (f->Has("split")) {
    for (absl::string_view c : absl::StrSplit(f->Get("split"), ',', absl::SkipEmpty())) {
      sel.categories.emplace_back(absl::StripAsciiWhitespace(c));
    }
  }
  sel.tasks_file = f->Get("tasks");
  sel.subset = f->Get("subset", sel.tasks_file.empty() ? "val,test" : "all");
  sel.limit = static_cast<int>(*limit);
  absl::StatusOr<std::vector<std::string>> ids = SelectEvalTasks(*catalog, data_dir, sel);
  if (!ids.ok()) return EvalUsage(err, std::string(ids.status().message()));
  if (ids->empty()) return EvalUsage(err, "no task matches the selection");

  // Policy.
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<Policy> model;
  std::unique_ptr<EvalPolicy> policy;
  if (policy_name == "ground_truth") {
    policy = GroundTruthEvalPolicy(&*catalog);
  } else if (policy_name == "no_calls") {
    policy = NoCallsEvalPolicy();
  } else {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(f->Get("tokenizer"));
    if (!tok.ok()) return EvalUsage(err, std::string(tok.status().message()));
    tokenizer = std::move(*tok);
    LoadPolicyOptions load;
    if (f->Has("dtype")) {
      std::string d = f->Get("dtype");
      if (d == "fp32") d = "float32";
      if (d == "bf16") d = "bfloat16";
      absl::StatusOr<c10::ScalarType> t = DtypeFromName(d);
      if (!t.ok()) return EvalUsage(err, std::string(t.status().message()));
      load.dtype = *t;
    }
    absl::StatusOr<c10::Device> device = ResolveDevice(f->Get("device", "cpu"));
    if (!device.ok()) return EvalUsage(err, absl::StrCat("--device: ", device.status().message()));
    load.device = *device;
    absl::StatusOr<Policy> p = LoadPolicy(f->Get("model"), load);
    if (!p.ok()) {
      err << "envtune eval: " << p.status().message() << "\n";
      return 1;
    }
    model = std::move(*p);
    ModelPolicyOptions mo = DefaultModelPolicyOptions();
    mo.generation.max_new_tokens = *mnt;
    mo.max_context_tokens = *ctx;
    mo.generation.do_sample = *temp > 0;
    mo.generation.temperature = *temp > 0 ? *temp : 1.0;
    mo.generation.top_k = *top_k;
    mo.generation.top_p = *top_p;
    mo.generation.seed = static_cast<uint64_t>(*seed);
    for (int64_t id : (*model)->config().generation_eos_token_ids) mo.generation.stop_token_ids.push_back(id);
    absl::StatusOr<std::unique_ptr<EvalPolicy>> mp = ModelEvalPolicy(model->get(), tokenizer.get(), mo);
    if (!mp.ok()) return EvalUsage(err, std::string(mp.status().message()));
    policy = std::move(*mp);
  }

  // Environment.
  std::unique_ptr<EpisodeEngine> engine;
  std::unique_ptr<EnvClient> client;
  std::unique_ptr<EvalEnv> env;
  if (f->Has("env")) {
    client = std::make_unique<EnvClient>(EnvTarget(f->Get("env")));
    env = RemoteEvalEnv(client.get());
  } else {
    engine = std::make_unique<EpisodeEngine>(&*catalog, EpisodeEngineOptions{});
    env = InProcessEvalEnv(engine.get());
  }

  const std::string out_dir = f->Get("out", "eval_results");
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    err << "envtune eval: cannot create " << out_dir << ": " << ec.message() << "\n";
    return 1;
  }
  size_t correct = 0;
  const bool show = !*quiet;
  EvalProgressFn progress = [&](const TaskEvaluation& done, size_t finished, size_t total) {
    if (done.verdict.valid) ++correct;
    if (!show) return;
    const int width = 30;
    const int filled = static_cast<int>(width * finished / std::max<size_t>(1, total));
    err << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << finished
        << "/" << total << absl::StrFormat("  acc %.1f%%", 100.0 * correct / finished)
        << (finished == total ? "\n" : "") << std::flush;
  };
  absl::StatusOr<std::vector<TaskEvaluation>> results =
      EvaluateTasks(*policy, *env, *catalog, *ids, eo, progress);
  if (!results.ok()) {
    err << "envtune eval: " << results.status().message() << "\n";
    return 1;
  }
  std::ofstream lines(out_dir + "/results.jsonl");
  for (const TaskEvaluation& r : *results) {
    lines << TaskEvaluationJson(r).dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  EvalReport report = BuildEvalReport(*results);
  Json meta;
  meta["policy"] = policy_name;
  if (policy_name == "model") meta["model"] = f->Get("model");
  meta["format"] = std::string(OutputFormatName(eo.format));
  meta["subset"] = sel.subset;
  meta["split"] = f->Get("split", "base,miss_func,miss_param,long_context");
  if (!sel.tasks_file.empty()) meta["tasks_file"] = sel.tasks_file;
  meta["tasks"] = ids->size();
  meta["decoding"] = *temp > 0 ? absl::StrCat("sampled T=", *temp, " seed=", *seed) : "greedy";
  std::ofstream(out_dir + "/report.json") << EvalReportJson(report, meta).dump(2) << "\n";
  const std::string md = EvalReportMarkdown(report, meta);
  std::ofstream(out_dir + "/report.md") << md;
  if (!lines) {
    err << "envtune eval: writing " << out_dir << " failed\n";
    return 1;
  }
  out << md;
  return 0;
}

}  // namespace envtune
