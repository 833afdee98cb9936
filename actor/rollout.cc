#include "actor/rollout.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "episodes/conversation.h"
#include "model/generate.h"
#include "model/text/chat_template.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

using Json = nlohmann::ordered_json;

// A fixed set of threads running queued closures; the destructor drains and joins.
class ThreadPool {
 public:
  explicit ThreadPool(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i) workers_.emplace_back([this] { Loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  void Submit(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    while (true) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;  // queued work is dropped: its results are no longer wanted
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

Json MessagesToJson(const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages) {
  Json out = Json::array();
  for (const v1::ChatMessage& m : messages) {
    Json j = {{"role", m.role()}, {"content", m.content()}};
    if (!m.name().empty()) j["name"] = m.name();
    out.push_back(std::move(j));
  }
  return out;
}

// One episode's state. Owned by Run's thread; env calls see only copies of their requests.
struct Episode {
  const EpisodeSpec* spec = nullptr;
  size_t index = 0;
  enum class Phase { kWaitingEnv, kReady, kDone } phase = Phase::kWaitingEnv;
  absl::Time started;
  // Tokens, loss mask, behaviour log-probs and messages (episodes/conversation.h); empty until
  // the episode started.
  std::optional<Conversation> conversation;
  std::string state;
  uint32_t model_turns = 0;
  int64_t generated = 0;
  SequenceCachePtr kv;        // keys/values of the conversation so far (reuse_kv_cache)
  int64_t kv_reserved = 0;    // bytes of the KV budget this episode holds while in flight
  size_t reply_begin = 0, reply_end = 0;
  std::vector<v1::TurnSpan> spans;
  bool span_open = false;
  double reward = 0;
  v1::RewardComponents components;
  bool augmented = false;
  std::string finish_reason;
  bool failed = false;
  std::string error;
};

// A finished env call, handed from a pool thread to Run's thread.
struct Completion {
  size_t index;
  std::variant<absl::StatusOr<v1::StartEpisodeResponse>, absl::StatusOr<v1::StepResponse>> result;
};

}  // namespace

absl::StatusOr<KvBudget> ParseKvBudget(std::string_view text) {
  const absl::string_view input(text.data(), text.size());
  const absl::string_view t = absl::StripAsciiWhitespace(input);
  KvBudget out;
  if (t.empty() || t == "0") return out;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV budget '", input, "': ", why,
        " (want a size like 4GiB, 512MiB, 2GB, or a fraction of device memory like 0.9 or 90%)"));
  };
  struct Unit {
    const char* name;
    double scale;
  };
  constexpr Unit kUnits[] = {{"KiB", 1024.0}, {"MiB", 1024.0 * 1024}, {"GiB", 1024.0 * 1024 * 1024},
                             {"TiB", 1024.0 * 1024 * 1024 * 1024}, {"KB", 1e3}, {"MB", 1e6},
                             {"GB", 1e9}, {"TB", 1e12}, {"B", 1.0}, {"%", -1.0}};
  absl::string_view number = t;
  double scale = 0;  // 0: a bare number
  for (const Unit& u : kUnits) {
    if (absl::EndsWith(t, u.name)) {
      number = absl::StripTrailingAsciiWhitespace(t.substr(0, t.size() - strlen(u.name)));
      scale = u.scale;
      break;
    }
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value) || !std::isfinite(value) || value < 0) {
    return bad("not a non-negative number with a unit");
  }
  if (scale < 0) {  // percent
    if (value <= 0 || value > 100) return bad("a percentage must be in (0, 100]");
    out.fraction = value / 100;
  } else if (scale == 0) {
    if (value > 1) return bad("a bare number is a fraction and must be in (0, 1]; give a unit for bytes");
    out.fraction = value;
  } else {
    const double bytes = value * scale;
    if (bytes < 1 || bytes > 9e18) return bad("out of range");
    out.bytes = static_cast<int64_t>(bytes);
  }
  return out;
}

std::string KvBudgetString(const KvBudget& budget) {
  if (budget.bytes > 0) return absl::StrCat(budget.bytes, " bytes");
  if (budget.fraction > 0) return absl::StrCat(budget.fraction, " of device memory");
  return "unlimited";
}

Rollout::Rollout(const Tokenizer* tokenizer, EnvClient* env, RolloutOptions options)
    : tokenizer_(tokenizer), env_(env), options_(std::move(options)) {}

absl::StatusOr<std::pair<int64_t, std::string>> Rollout::KvBudgetBytes(
    const PolicyImpl& policy) const {
  int64_t bytes = options_.kv_budget.bytes;
  std::string source = absl::StrCat("actor.kv_budget ", KvBudgetString(options_.kv_budget));
  if (options_.kv_budget.fraction > 0) {
    absl::StatusOr<DeviceMemory> memory = PolicyDeviceMemory(policy);
    if (!memory.ok()) return memory.status();
    bytes = static_cast<int64_t>(options_.kv_budget.fraction *
                                 static_cast<double>(memory->total_bytes)) -
            memory->parameter_bytes;
    absl::StrAppend(&source, " (", memory->total_bytes, " bytes of device memory, ",
                    memory->parameter_bytes, " of them the policy's parameters)");
    if (bytes <= 0) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "rollout: no KV budget left: ", source, " leaves ", bytes, " bytes for keys and values"));
    }
  }
  return std::make_pair(bytes, std::move(source));
}

absl::StatusOr<int64_t> Rollout::EpisodesWithinBudget(const PolicyImpl& policy,
                                                      int64_t episode_tokens) const {
  const int64_t concurrency = std::max(1, options_.concurrency);
  absl::StatusOr<std::pair<int64_t, std::string>> budget = KvBudgetBytes(policy);
  if (!budget.ok()) return budget.status();
  if (budget->first == 0) return concurrency;
  const int64_t per_episode = std::max<int64_t>(1, episode_tokens) * KvBytesPerToken(policy);
  return std::clamp<int64_t>(budget->first / per_episode, 1, concurrency);
}

absl::StatusOr<std::vector<EpisodeResult>> Rollout::Run(PolicyImpl& policy,
                                                        uint64_t policy_version,
                                                        const std::vector<EpisodeSpec>& specs,
                                                        const EpisodeDoneFn& on_done,
                                                        const std::atomic<bool>* cancel) {
  if (tokenizer_ == nullptr || env_ == nullptr) {
    return absl::InvalidArgumentError("rollout: tokenizer and env client are required");
  }
  std::optional<TokenId> im_end = tokenizer_->TokenToId(kImEnd);
  if (!im_end.has_value()) {
    return absl::InvalidArgumentError("rollout: the tokenizer has no <|im_end|> token");
  }
  if (options_.concurrency < 1 || !(options_.temperature > 0) || options_.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        "rollout: concurrency >= 1, temperature > 0 and max_new_tokens >= 1 are required");
  }
  const size_t n = specs.size();
  std::vector<Episode> episodes(n);
  std::vector<EpisodeResult> results(n);
  if (n == 0) return results;
  auto episode_tokens = [&](const EpisodeSpec& s) {
    return s.max_episode_tokens > 0 ? s.max_episode_tokens : options_.max_episode_tokens;
  };

  // The KV budget in bytes (0 = none) and each episode's reservation.
  const int64_t kv_per_token = KvBytesPerToken(policy);
  absl::StatusOr<std::pair<int64_t, std::string>> resolved = KvBudgetBytes(policy);
  if (!resolved.ok()) return resolved.status();
  const int64_t kv_budget = resolved->first;
  const std::string budget_source = resolved->second;
  auto kv_reservation = [&](const EpisodeSpec& s) { return episode_tokens(s) * kv_per_token; };
  if (kv_budget > 0) {
    for (const EpisodeSpec& s : specs) {
      if (kv_reservation(s) > kv_budget) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "rollout: episode ", s.episode_id, " needs ", kv_reservation(s),
            " bytes of KV cache (", episode_tokens(s), " tokens (max_episode_tokens) x ",
            kv_per_token, " bytes per token) but the KV budget is ", kv_budget, " bytes (",
            budget_source, "); raise actor.kv_budget or lower max_episode_tokens"));
      }
    }
  }
  int64_t kv_reserved = 0;  // by the episodes in flight

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Completion> completions;  // guarded by mu
  size_t in_flight = 0;                // env calls submitted and not yet consumed
  size_t next = 0, active = 0, finished = 0;
  // Pool tasks touch only mu, cv, completions and env_: all outlive the pool, which is
  // declared after them and so joined first.
  ThreadPool pool(options_.env_threads > 0 ? options_.env_threads : options_.concurrency);
  auto submit = [&pool, &mu, &cv, &completions](std::function<Completion()> call) {
    pool.Submit([&mu, &cv, &completions, call = std::move(call)] {
      Completion c = call();
      {
        std::lock_guard<std::mutex> lock(mu);
        completions.push_back(std::move(c));
      }
      cv.notify_all();
    });
  };

  auto finish = [&](Episode& e, std::string reason) {
    if (e.phase == Episode::Phase::kDone) return;
    e.phase = Episode::Phase::kDone;
    e.kv.reset();
    kv_reserved -= e.kv_reserved;
    e.kv_reserved = 0;
    e.finish_reason = std::move(reason);
    const EpisodeSpec& s = *e.spec;
    EpisodeResult& r = results[e.index];
    v1::Trajectory& t = r.trajectory;
    t.set_episode_id(s.episode_id);
    t.set_lease_id(s.lease_id);
    t.set_group_id(s.group_id);
    t.set_group_size(s.group_size);
    t.set_task_id(s.task_id);
    t.set_stage(s.stage);
    t.set_policy_version(policy_version);
    t.set_finish_reason(e.finish_reason);
    t.set_augmented(e.augmented);
    if (e.failed) {
      t.set_failed(true);
      t.set_error(e.error);
    } else {
      const Conversation& c = *e.conversation;
      t.mutable_token_ids()->Assign(c.ids().begin(), c.ids().end());
      t.set_loss_mask(c.mask());
      t.mutable_behaviour_logprobs()->Assign(c.logprobs().begin(), c.logprobs().end());
      for (const v1::TurnSpan& span : e.spans) *t.add_turns() = span;
      t.set_prompt_tokens(static_cast<uint32_t>(c.prompt_tokens()));
      t.set_reward(e.reward);
      t.set_progress(e.components.progress());
      t.set_format_score(e.components.format_score());
      t.set_tool_call_score(e.components.tool_call_score());
    }
    v1::EpisodeStats& st = r.stats;
    st.set_episode_id(s.episode_id);
    st.set_reward(t.reward());
    st.set_progress(t.progress());
    st.set_format_score(t.format_score());
    st.set_tool_call_score(t.tool_call_score());
    // BFCL verdict: every turn scored 1 in an episode that ran to its end.
    st.set_valid(!e.failed && e.finish_reason == "done" && e.components.progress() >= 1.0 - 1e-9);
    st.set_tokens(static_cast<uint32_t>(t.token_ids_size()));
    st.set_generated_tokens(static_cast<uint32_t>(e.generated));
    st.set_policy_version(policy_version);
    st.set_failed(e.failed);
    ++finished;
    --active;
    episodes_finished_.fetch_add(1);
    if (on_done) on_done(s, r);
  };
  auto fail = [&](Episode& e, std::string reason, std::string error) {
    e.failed = true;
    e.error = std::move(error);
    finish(e, std::move(reason));
  };

  auto launch = [&](size_t i) {
    Episode& e = episodes[i];
    e.spec = &specs[i];
    e.index = i;
    e.started = absl::Now();
    e.phase = Episode::Phase::kWaitingEnv;
    if (kv_budget > 0) {
      e.kv_reserved = kv_reservation(*e.spec);
      kv_reserved += e.kv_reserved;
      int64_t seen = max_kv_reserved_.load();
      while (kv_reserved > seen && !max_kv_reserved_.compare_exchange_weak(seen, kv_reserved)) {
      }
    }
    v1::StartEpisodeRequest request;
    request.set_task_id(e.spec->task_id);
    *request.mutable_options() = e.spec->options;
    ++in_flight;
    ++active;
    int64_t seen = max_in_flight_.load();
    while (static_cast<int64_t>(active) > seen &&
           !max_in_flight_.compare_exchange_weak(seen, static_cast<int64_t>(active))) {
    }
    EnvClient* env = env_;
    submit([env, i, request = std::move(request)] {
      return Completion{i, env->StartEpisode(request)};
    });
  };

  auto on_started = [&](Episode& e, absl::StatusOr<v1::StartEpisodeResponse> r) {
    if (!r.ok()) return fail(e, "env_error", std::string(r.status().message()));
    e.state = std::move(*r->mutable_episode_state());
    e.augmented = r->augmented();
    Json tools;  // null unless the Hermes format carries native tool schemas
    if (e.spec->options.output_format() == v1::OUTPUT_FORMAT_HERMES && r->tools_json_size() > 0) {
      tools = Json::array();
      for (const std::string& tool : r->tools_json()) {
        Json parsed = Json::parse(tool, nullptr, /*allow_exceptions=*/false);
        if (parsed.is_discarded()) {
          return fail(e, "env_error", absl::StrCat("episode ", e.spec->episode_id,
                                                   ": env sent a tool schema that is not JSON"));
        }
        tools.push_back(std::move(parsed));
      }
    }
    absl::StatusOr<Conversation> conversation =
        Conversation::Open(tokenizer_, MessagesToJson(r->messages()), std::move(tools));
    if (!conversation.ok()) {
      return fail(e, "env_error",
                  absl::StrCat("episode ", e.spec->episode_id,
                               ": rendering and tokenizing the opening messages: ",
                               conversation.status().message()));
    }
    e.conversation = std::move(*conversation);
    e.phase = Episode::Phase::kReady;
  };

  auto on_stepped = [&](Episode& e, absl::StatusOr<v1::StepResponse> r) {
    if (!r.ok()) return fail(e, "env_error", std::string(r.status().message()));
    e.state = std::move(*r->mutable_episode_state());
    e.reward = r->episode_reward();
    e.components = r->components();
    // Turn spans: a turn's span runs from its first reply to the end of its last reply.
    if (!e.span_open || e.spans.back().turn_index() != r->turn_index()) {
      v1::TurnSpan span;
      span.set_turn_index(r->turn_index());
      span.set_token_begin(static_cast<uint32_t>(e.reply_begin));
      e.spans.push_back(span);
      e.span_open = true;
    }
    e.spans.back().set_token_end(static_cast<uint32_t>(e.reply_end));
    if (r->turn_ended()) {
      e.spans.back().set_score(r->turn_score().score());
      e.spans.back().set_state_ok(r->turn_score().state_ok());
      e.spans.back().set_response_ok(r->turn_score().response_ok());
      e.span_open = false;
    }
    if (r->episode_ended()) return finish(e, "done");
    Json added = MessagesToJson(r->observation());
    absl::StatusOr<std::vector<TokenId>> ids = e.conversation->NextMessagesTokens(added);
    if (!ids.ok()) {
      return fail(
          e, "env_error",
          absl::StrCat("episode ", e.spec->episode_id,
                       ": rendering and tokenizing the observation: ", ids.status().message()));
    }
    // The observation plus at least one generated token must fit.
    if (static_cast<int64_t>(e.conversation->ids().size() + ids->size()) >=
        episode_tokens(*e.spec)) {
      return finish(e, "token_budget");
    }
    e.conversation->AppendMessages(std::move(added), *ids);
    e.phase = Episode::Phase::kReady;
  };

  auto drain = [&](std::deque<Completion>& batch) {
    for (Completion& c : batch) {
      --in_flight;
      Episode& e = episodes[c.index];
      if (e.phase == Episode::Phase::kDone) continue;
      if (auto* started = std::get_if<0>(&c.result)) {
        on_started(e, std::move(*started));
      } else {
        on_stepped(e, std::move(std::get<1>(c.result)));
      }
    }
    batch.clear();
  };

  auto cancelled = [&] { return cancel != nullptr && cancel->load(); };

  // Generates one reply for every episode of `rows`. A batch whose cache would exceed its rows'
  // KV reservations is split in halves; any other failure is the round's error.
  std::function<absl::Status(const std::vector<size_t>&, bool)> generate;
  generate = [&](const std::vector<size_t>& rows, bool greedy) -> absl::Status {
    GenerationOptions g;
    g.do_sample = !greedy;
    g.temperature = options_.temperature;
    g.top_p = options_.top_p;
    g.top_k = options_.top_k;
    g.stop_token_ids = {*im_end};
    // Each reply samples from its own stream (episode seed, reply index), so an episode's
    // samples do not depend on which other episodes happened to share its generation batch.
    std::vector<std::vector<int64_t>> prompts;
    std::vector<SequenceCachePtr> caches;
    std::vector<int64_t> caps;
    int64_t max_cap = 1;
    int64_t kv_rows = 0;  // the rows' reservations
    for (size_t i : rows) {
      const Episode& e = episodes[i];
      kv_rows += e.kv_reserved;
      prompts.emplace_back(e.conversation->ids().begin(), e.conversation->ids().end());
      caches.push_back(std::move(episodes[i].kv));  // Generate consumes it
      g.row_seeds.push_back(SplitMix64(options_.seed ^ SplitMix64(e.spec->options.seed()) ^
                                       SplitMix64(static_cast<uint64_t>(e.model_turns) + 1)));
      int64_t cap = e.spec->max_new_tokens > 0 ? e.spec->max_new_tokens : options_.max_new_tokens;
      cap = std::min<int64_t>(
          cap, episode_tokens(*e.spec) - static_cast<int64_t>(e.conversation->ids().size()));
      caps.push_back(cap);
      max_cap = std::max(max_cap, cap);
    }
    g.max_new_tokens = max_cap;
    g.max_kv_bytes = kv_rows;
    generate_batches_.fetch_add(1);
    int64_t seen = max_batch_rows_.load();
    while (static_cast<int64_t>(rows.size()) > seen &&
           !max_batch_rows_.compare_exchange_weak(seen, static_cast<int64_t>(rows.size()))) {
    }
    const absl::Time generate_start = absl::Now();
    absl::StatusOr<std::vector<GenerationResult>> out =
        Generate(policy, prompts, g, nullptr, options_.reuse_kv_cache ? &caches : nullptr);
    generation_micros_.fetch_add(absl::ToInt64Microseconds(absl::Now() - generate_start));
    if (!out.ok() && IsKvLimitError(out.status()) && rows.size() > 1) {
      kv_batch_splits_.fetch_add(1);
      const auto half = rows.begin() + static_cast<std::ptrdiff_t>(rows.size() / 2);
      if (absl::Status st = generate(std::vector<size_t>(rows.begin(), half), greedy); !st.ok()) {
        return st;
      }
      return generate(std::vector<size_t>(half, rows.end()), greedy);
    }
    if (!out.ok()) {
      return absl::Status(out.status().code(),
                          absl::StrCat("rollout: generating replies for ", rows.size(),
                                       " episodes (", episodes[rows[0]].spec->episode_id,
                                       rows.size() > 1 ? ", ..." : "", "): ",
                                       out.status().message()));
    }
    for (size_t k = 0; k < rows.size(); ++k) {
      Episode& e = episodes[rows[k]];
      GenerationResult& res = (*out)[k];
      if (options_.reuse_kv_cache) e.kv = std::move(caches[k]);
      // One batch serves rows with different caps: a row keeps the prefix within its own cap
      // (a prefix of an autoregressive sample is a sample).
      if (static_cast<int64_t>(res.token_ids.size()) > caps[k]) {
        res.token_ids.resize(caps[k]);
        res.logprobs.resize(caps[k]);
      }
      const bool stopped = !res.token_ids.empty() && res.token_ids.back() == *im_end;
      const std::vector<TokenId> sampled(res.token_ids.begin(), res.token_ids.end());
      e.generated += static_cast<int64_t>(sampled.size());
      tokens_generated_.fetch_add(static_cast<int64_t>(sampled.size()));
      ++e.model_turns;
      // Decode only to talk to the env: the reply without its stop token.
      absl::StatusOr<std::string> text =
          tokenizer_->Decode(absl::MakeConstSpan(sampled).first(sampled.size() - (stopped ? 1 : 0)),
                             {.skip_unknown_ids = true});
      if (!text.ok()) {
        fail(e, "env_error", absl::StrCat("episode ", e.spec->episode_id,
                                          ": decoding the reply: ", text.status().message()));
        continue;
      }
      e.reply_begin = e.conversation->ids().size();
      e.conversation->AppendSampledReply(sampled, res.logprobs, stopped, *text);
      e.reply_end = e.conversation->ids().size();
      v1::StepRequest request;
      request.set_episode_state(e.state);
      request.set_model_output(std::move(*text));
      e.phase = Episode::Phase::kWaitingEnv;
      ++in_flight;
      const size_t index = rows[k];
      EnvClient* env = env_;
      submit([env, index, request = std::move(request)] {
        return Completion{index, env->Step(request)};
      });
    }
    return absl::OkStatus();
  };

  std::deque<Completion> batch;
  while (finished < n) {
    if (cancelled()) {
      for (Episode& e : episodes) {
        if (e.spec != nullptr && e.phase != Episode::Phase::kDone) {
          fail(e, "cancelled", "rollout cancelled (actor stopping)");
        }
      }
      for (size_t i = next; i < n; ++i) {
        episodes[i].spec = &specs[i];
        episodes[i].index = i;
        ++active;
        fail(episodes[i], "cancelled", "rollout cancelled (actor stopping)");
      }
      next = n;
      break;
    }
    // Admission: `concurrency`, and the KV budget (an episode waits until its reservation fits;
    // alone, it always fits, as checked above).
    while (active < static_cast<size_t>(options_.concurrency) && next < n &&
           (kv_budget == 0 || active == 0 ||
            kv_reserved + kv_reservation(specs[next]) <= kv_budget)) {
      launch(next++);
    }

    // Budgets are checked when an episode is about to use the model.
    std::vector<size_t> sampled, greedy;
    auto collect = [&] {
      sampled.clear();
      greedy.clear();
      for (Episode& e : episodes) {
        if (e.spec == nullptr || e.phase != Episode::Phase::kReady) continue;
        const absl::Time now = absl::Now();
        if (now - e.started > options_.max_episode_time || now > e.spec->deadline) {
          finish(e, "time_budget");
        } else if (e.model_turns >= options_.max_model_turns) {
          finish(e, "turn_budget");
        } else if (static_cast<int64_t>(e.conversation->ids().size()) >= episode_tokens(*e.spec)) {
          finish(e, "token_budget");
        } else {
          (e.spec->greedy ? greedy : sampled).push_back(e.index);
        }
      }
    };
    collect();
    if (!sampled.empty() || !greedy.empty()) {
      // Give env replies still in flight a moment to join this batch; in lockstep, wait for all
      // of them (checking for cancellation), so the batch is every episode not done.
      {
        std::unique_lock<std::mutex> lock(mu);
        auto all_replied = [&] { return completions.size() >= in_flight; };
        if (options_.lockstep) {
          while (!cv.wait_for(lock, std::chrono::milliseconds(200), all_replied) && !cancelled()) {
          }
        } else {
          cv.wait_for(lock, absl::ToChronoMilliseconds(options_.batch_gather), all_replied);
        }
        batch.swap(completions);
      }
      if (cancelled()) {
        drain(batch);
        continue;
      }
      drain(batch);
      collect();
      for (auto [rows, is_greedy] : {std::pair{&sampled, false}, std::pair{&greedy, true}}) {
        if (rows->empty()) continue;
        if (absl::Status st = generate(*rows, is_greedy); !st.ok()) return st;
      }
      continue;
    }
    if (finished >= n) break;
    {
      const absl::Time wait_start = absl::Now();
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return !completions.empty(); });
      batch.swap(completions);
      env_wait_micros_.fetch_add(absl::ToInt64Microseconds(absl::Now() - wait_start));
    }
    drain(batch);
  }
  // The pool joins here (running calls finish within their deadlines; queued ones are dropped).
  return results;
}

}  // namespace envtune
