// The episode engine (see episode.h).
#include "envserver/episode.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/utf8.h"
#include "envserver/decode.h"
#include "envserver/prompts.h"
#include "envserver/reply_format.h"
#include "openssl/core_names.h"
#include "openssl/crypto.h"
#include "openssl/evp.h"
#include "openssl/params.h"
#include "openssl/sha.h"

namespace envtune {
namespace {

constexpr char kSealDomain[] = "envtune.episode_state";
constexpr uint8_t kSealHmac = 1;
constexpr uint8_t kSealChecksum = 2;
constexpr size_t kTagBytes = 32;
// BFCL's checker names the model side "<model>_eval" (checker.md D.2); the ground-truth side is
// GroundTruthSandboxOptions().
constexpr char kModelSideName[] = "envtune_eval";

// SHA-256 / HMAC-SHA256 over kSealDomain, the kind byte and the payload (streamed: no copy).
// `keyed_id` identifies `keyed` for the life of the process (addresses are reused, ids are not).
void ComputeTagInto(const EVP_MD* sha256, const EVP_MAC_CTX* keyed, uint64_t keyed_id, uint8_t kind,
                    std::string_view payload, unsigned char out[kTagBytes]) {
  const unsigned char kind_byte = kind;
  const auto* p = reinterpret_cast<const unsigned char*>(payload.data());
  const auto* domain = reinterpret_cast<const unsigned char*>(kSealDomain);
  const size_t domain_len = sizeof(kSealDomain) - 1;
  // One working context per thread, reset from the keyed one for each tag (no allocation).
  struct Scratch {
    EVP_MAC_CTX* mac = nullptr;
    uint64_t copied_from = 0;  // keyed_id of `mac`; 0: none
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    ~Scratch() {
      EVP_MAC_CTX_free(mac);
      EVP_MD_CTX_free(md);
    }
  };
  thread_local Scratch scratch;
  if (kind == kSealHmac) {
    if (scratch.copied_from != keyed_id) {  // first use on this thread, or another engine's key
      EVP_MAC_CTX_free(scratch.mac);
      scratch.mac = EVP_MAC_CTX_dup(keyed);
      scratch.copied_from = keyed_id;
    }
    EVP_MAC_CTX* c = scratch.mac;
    size_t len = 0;
    // EVP_MAC_init without a key restarts with the key already set.
    if (c == nullptr || !EVP_MAC_init(c, nullptr, 0, nullptr) || !EVP_MAC_update(c, domain, domain_len) ||
        !EVP_MAC_update(c, &kind_byte, 1) || !EVP_MAC_update(c, p, payload.size()) ||
        !EVP_MAC_final(c, out, &len, kTagBytes) || len != kTagBytes) {
      std::abort();  // OpenSSL out of memory; the context was verified at construction
    }
    return;
  }
  EVP_MD_CTX* c = scratch.md;
  unsigned int len = 0;
  if (c == nullptr || !EVP_DigestInit_ex(c, sha256, nullptr) || !EVP_DigestUpdate(c, domain, domain_len) ||
      !EVP_DigestUpdate(c, &kind_byte, 1) || !EVP_DigestUpdate(c, p, payload.size()) ||
      !EVP_DigestFinal_ex(c, out, &len) || len != kTagBytes) {
    std::abort();
  }
}

// The held-out docs already revealed when turn `turn` starts, plus the visible ones.
PyList DocsInForce(const TaskDocs& docs, int turn) {
  PyList out = docs.visible;
  for (const auto& [reveal_turn, revealed] : docs.held_out) {
    if (reveal_turn > turn) continue;
    out.insert(out.end(), revealed.begin(), revealed.end());
  }
  return out;
}

std::vector<std::string> ToolsJson(const TaskDocs& docs, int turn, const ReplyFormat& format) {
  std::vector<std::string> out;
  for (const PyValue& doc : DocsInForce(docs, turn)) out.push_back(format.ToolJson(doc));
  return out;
}

// The user message that opens an empty-question turn (a reveal turn of miss_func).
std::string OpeningOfEmptyTurn(const TaskDocs& docs, int turn, const ReplyFormat& format) {
  auto it = docs.held_out.find(turn);
  if (it == docs.held_out.end() || it->second.empty())
    return "";  // reveals nothing (not in BFCL data)
  return format.RevealMessage(it->second);
}

void SetTools(const std::vector<std::string>& tools, google::protobuf::RepeatedPtrField<std::string>* out) {
  out->Reserve(static_cast<int>(tools.size()));
  for (const std::string& t : tools) out->Add(std::string(t));
}

// The user message(s) that open turn `turn`, with `prefix` before the first one's content.
void AddTurnMessages(const BfclTask& task, int turn, const std::map<int, std::string>& openings,
                     const std::string& prefix, google::protobuf::RepeatedPtrField<v1::ChatMessage>* out) {
  const std::vector<BfclMessage>& msgs = task.questions[turn];
  if (msgs.empty()) {
    auto it = openings.find(turn);
    AddChatMessage(out, "user", prefix + (it == openings.end() ? std::string() : it->second));
    return;
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    AddChatMessage(out, msgs[i].role, (i == 0 ? prefix : std::string()) + msgs[i].content);
  }
}

// The reply decoded in `format`. Token-level sampling can produce invalid UTF-8: it is decoded
// like Python's errors="replace" first, so that call strings, results and the blob stay valid
// protobuf strings. More than `max_calls` calls is a format error.
DecodeResult DecodeReply(const ReplyFormat& format, std::string_view reply, size_t max_calls) {
  DecodeResult decoded =
      IsValidUtf8(reply) ? format.Decode(reply) : format.Decode(SanitizeUtf8(reply));
  if (decoded.kind == DecodeResult::Kind::kCalls && decoded.calls.size() > max_calls) {
    const size_t n = decoded.calls.size();
    decoded = DecodeResult{};
    decoded.kind = DecodeResult::Kind::kFormatError;
    decoded.message = absl::StrCat("the reply holds ", n, " calls; at most ", max_calls,
                                   " are allowed in one step.");
  }
  return decoded;
}

void FinalizeComponents(const v1::EpisodeState& s, size_t num_turns, v1::RewardComponents* c, double* reward) {
  *c = s.components();
  const double n = c->entries(), f = c->format_errors(), ok = c->clean_steps(), err = c->error_steps();
  c->set_format_score(n > 0 ? (n - f) / n : 0.0);
  c->set_tool_call_score(ok + err > 0 ? ok / (ok + err) : 0.0);
  c->set_progress(num_turns > 0 ? static_cast<double>(c->turns_scored_one()) / static_cast<double>(num_turns) : 0.0);
  const double has_call = ok + err > 0 ? 1.0 : 0.0;
  c->set_stage1_reward(has_call * (c->format_score() + c->tool_call_score()));
  switch (s.options().reward_kind()) {
    case v1::REWARD_KIND_FORMAT: *reward = c->stage1_reward(); break;
    case v1::REWARD_KIND_BINARY:
      *reward = num_turns > 0 && c->turns_scored_one() == num_turns ? 1.0 : 0.0;
      break;
    default: *reward = c->progress();
  }
}

bool MultisetContains(const std::vector<std::string>& haystack, const std::vector<CallRecord>& needles) {
  absl::flat_hash_map<std::string_view, int> counts;
  for (const std::string& h : haystack) ++counts[h];
  for (const CallRecord& n : needles) {
    auto it = counts.find(n.result);
    if (it == counts.end() || it->second == 0) return false;
    --it->second;
  }
  return true;
}

// Python == of the model's public state and the truth's for every class in `truth_states`.
// A class the model never touched still holds its initial state: `truth_is_initial` decides it.
bool StatesMatch(const Sandbox& model, const PyValue& truth_states, const std::vector<char>& truth_is_initial) {
  if (!truth_states.is_dict()) return false;
  for (const auto& [cls, truth] : truth_states.dict()) {
    const int i = cls.is_str() ? model.ClassIndex(cls.as_str()) : -1;
    if (i < 0 || model.instance_at(i) == nullptr) return false;
    if (!model.touched(i)) {
      if (!truth_is_initial[i]) return false;
      continue;
    }
    if (!model.instance_at(i)->PublicStateEquals(truth)) return false;
  }
  return true;
}

}  // namespace

EpisodeEngine::EpisodeEngine(const TaskCatalog* catalog, EpisodeEngineOptions options)
    : catalog_(catalog), options_(std::move(options)), seal_(MakeSealContext(options_.hmac_key)) {
  for (SandboxContext* ctx : {&plain_, &augmented_}) {
    ctx->long_context_constants = &catalog_->long_context_constants();
    ctx->today_year = options_.today_year;
    ctx->today_month = options_.today_month;
    ctx->today_day = options_.today_day;
  }
  augmented_.augment = true;
  if (options_.parse_cache_capacity > 0) {
    parse_cache_ = std::make_unique<ParsedCallCache>(options_.parse_cache_capacity);
  }
}

bool EpisodeEngine::DecideAugment(uint64_t seed, std::string_view task_id, double probability) {
  if (!(probability > 0.0)) return false;
  if (probability >= 1.0) return true;
  std::string data(8, '\0');
  for (int i = 0; i < 8; ++i) data[i] = static_cast<char>((seed >> (8 * i)) & 0xFF);
  data.append(task_id.data(), task_id.size());
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | digest[i];
  const double x = static_cast<double>(u >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  return x < probability;
}

// The algorithms fetched once (OpenSSL 3's one-shot HMAC()/SHA256() fetch them on every call) and
// the HMAC context keyed once; each tag duplicates the keyed context.
struct EpisodeEngine::SealContext {
  EVP_MD* sha256 = nullptr;
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* keyed = nullptr;  // never updated itself
  uint64_t id = 0;               // unique per context in this process (never 0)
  ~SealContext() {
    EVP_MAC_CTX_free(keyed);
    EVP_MAC_free(mac);
    EVP_MD_free(sha256);
  }
};

std::shared_ptr<const EpisodeEngine::SealContext> EpisodeEngine::MakeSealContext(const std::string& key) {
  static std::atomic<uint64_t> next_id{1};
  auto ctx = std::make_shared<SealContext>();
  ctx->id = next_id.fetch_add(1);
  ctx->sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  ctx->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (ctx->sha256 == nullptr || ctx->mac == nullptr) std::abort();  // libcrypto without SHA-256
  ctx->keyed = EVP_MAC_CTX_new(ctx->mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
  // An empty key (checksum mode) never uses the HMAC context; HMAC rejects a null key pointer.
  const unsigned char dummy = 0;
  const auto* k = key.empty() ? &dummy : reinterpret_cast<const unsigned char*>(key.data());
  if (ctx->keyed == nullptr || !EVP_MAC_init(ctx->keyed, k, key.empty() ? 1 : key.size(), params)) std::abort();
  return ctx;
}

std::string EpisodeEngine::Seal(const v1::EpisodeState& state) const {
  const uint8_t kind = options_.hmac_key.empty() ? kSealChecksum : kSealHmac;
  const size_t size = state.ByteSizeLong();
  std::string blob(1 + size + kTagBytes, '\0');
  blob[0] = static_cast<char>(kind);
  state.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(&blob[1]));
  ComputeTagInto(seal_->sha256, seal_->keyed, seal_->id, kind, std::string_view(blob).substr(1, size),
                 reinterpret_cast<unsigned char*>(&blob[1 + size]));
  return blob;
}

absl::StatusOr<v1::EpisodeState> EpisodeEngine::Open(std::string_view blob) const {
  if (blob.empty()) return absl::InvalidArgumentError("episode_state is empty; pass the blob the last StartEpisode/Step returned");
  if (blob.size() < 1 + kTagBytes) {
    return absl::InvalidArgumentError(absl::StrCat("episode_state is truncated (", blob.size(), " bytes)"));
  }
  const uint8_t kind = static_cast<uint8_t>(blob[0]);
  const uint8_t expected = options_.hmac_key.empty() ? kSealChecksum : kSealHmac;
  if (kind != kSealHmac && kind != kSealChecksum) {
    return absl::InvalidArgumentError("episode_state is not an envtune episode-state blob (unknown seal kind)");
  }
  if (kind != expected) {
    return absl::InvalidArgumentError(
        kind == kSealHmac ? "episode_state was sealed with an HMAC key but this server has none (foreign cluster?)"
                          : "episode_state carries no HMAC but this server requires one (foreign or forged blob)");
  }
  std::string_view payload = blob.substr(1, blob.size() - 1 - kTagBytes);
  std::string_view tag = blob.substr(blob.size() - kTagBytes);
  unsigned char want[kTagBytes];
  ComputeTagInto(seal_->sha256, seal_->keyed, seal_->id, kind, payload, want);
  if (CRYPTO_memcmp(want, tag.data(), kTagBytes) != 0) {
    return absl::InvalidArgumentError(
        "episode_state failed authentication (tampered, truncated, or sealed with another key)");
  }
  v1::EpisodeState state;
  if (!state.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::InvalidArgumentError("episode_state payload does not parse");
  }
  if (state.version() != kStateVersion) {
    return absl::InvalidArgumentError(absl::StrCat("episode_state has version ", state.version(),
                                                   "; this server reads version ", kStateVersion));
  }
  return state;
}

absl::StatusOr<std::shared_ptr<const EpisodeEngine::TaskCache>> EpisodeEngine::GetTaskCache(const BfclTask& task,
                                                                                             bool augment) const {
  const std::string key = absl::StrCat(task.id, augment ? "#aug" : "#plain");
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.pos);
      return it->second.value;
    }
  }
  // Built outside the lock: two threads may build the same entry; the first stored wins.
  absl::StatusOr<Sandbox> initial = Sandbox::Create(task.id, task.involved_classes, task.initial_config,
                                                    task.long_context(), Context(augment),
                                                    SandboxOptions{kModelSideName, parse_cache_.get()});
  if (!initial.ok()) return initial.status();
  absl::StatusOr<ReplayResult> truth = ReplayGroundTruth(task, Context(augment), GroundTruthSandboxOptions());
  if (!truth.ok()) return truth.status();
  auto built = std::make_shared<TaskCache>(*std::move(initial), *std::move(truth));
  for (const ReplayTurn& turn : built->truth.turns) {
    std::vector<char>& same = built->truth_is_initial.emplace_back(built->initial.classes().size(), 0);
    for (size_t i = 0; i < same.size(); ++i) {
      const ToolApi* inst = built->initial.instance_at(i);
      const PyValue* truth_state = turn.state.is_dict() ? turn.state.dict().Find(built->initial.classes()[i]) : nullptr;
      same[i] = inst != nullptr && truth_state != nullptr && inst->PublicStateEquals(*truth_state);
    }
  }
  std::shared_ptr<const TaskCache> entry = std::move(built);
  absl::MutexLock lock(&mu_);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second.value;
  lru_.push_front(key);
  cache_[key] = CacheSlot{entry, lru_.begin()};
  while (cache_.size() > std::max<size_t>(1, options_.cache_capacity)) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  return entry;
}

std::unique_ptr<EpisodeEngine::EpisodeEntry> EpisodeEngine::TakeEpisode(std::string_view blob) const {
  if (options_.episode_cache_capacity == 0 || blob.size() < 1 + kTagBytes) return nullptr;
  const std::string tag(blob.substr(blob.size() - kTagBytes));
  absl::MutexLock lock(&episode_mu_);
  auto it = episodes_.find(tag);
  if (it == episodes_.end() || it->second.entry->blob != blob) return nullptr;
  std::unique_ptr<EpisodeEntry> entry = std::move(it->second.entry);
  episode_lru_.erase(it->second.pos);
  episodes_.erase(it);
  return entry;
}

void EpisodeEngine::PutEpisode(std::unique_ptr<EpisodeEntry> entry) const {
  if (options_.episode_cache_capacity == 0) return;
  std::string tag = entry->blob.substr(entry->blob.size() - kTagBytes);
  std::unique_ptr<EpisodeEntry> evicted;  // destroyed outside the lock
  absl::MutexLock lock(&episode_mu_);
  auto [it, inserted] = episodes_.try_emplace(std::move(tag));
  if (!inserted) {
    // The same blob sealed twice (identical episodes stepped identically): keep the newer.
    evicted = std::move(it->second.entry);
    episode_lru_.erase(it->second.pos);
  }
  episode_lru_.push_front(it->first);
  it->second = EpisodeSlot{std::move(entry), episode_lru_.begin()};
  if (episodes_.size() > options_.episode_cache_capacity) {
    auto last = episodes_.find(episode_lru_.back());
    evicted = std::move(last->second.entry);
    episodes_.erase(last);
    episode_lru_.pop_back();
  }
}

std::shared_ptr<const EpisodeEngine::TaskPrompts> EpisodeEngine::Prompts(const TaskCache& cache,
                                                                          const BfclTask& task,
                                                                          v1::OutputFormat format) const {
  const int index = static_cast<int>(format);
  {
    absl::MutexLock lock(&cache.prompts_mu);
    if (cache.prompts[index] != nullptr) return cache.prompts[index];
  }
  // Rendered outside the lock: two threads may render the same texts; the first stored wins.
  auto prompts = std::make_shared<TaskPrompts>();
  const TaskDocs docs = CollectTaskDocs(*catalog_, task);
  const ReplyFormat& reply_format = ReplyFormatFor(format);
  prompts->system = reply_format.SystemPrompt(docs.visible);
  prompts->tools[0] = ToolsJson(docs, 0, reply_format);
  for (const auto& [turn, names] : task.missed_function)
    prompts->tools[turn] = ToolsJson(docs, turn, reply_format);
  for (size_t t = 0; t < task.questions.size(); ++t) {
    if (task.questions[t].empty()) {
      prompts->opening[static_cast<int>(t)] =
          OpeningOfEmptyTurn(docs, static_cast<int>(t), reply_format);
    }
  }
  absl::MutexLock lock(&cache.prompts_mu);
  if (cache.prompts[index] == nullptr) cache.prompts[index] = std::move(prompts);
  return cache.prompts[index];
}

absl::StatusOr<v1::StartEpisodeResponse> EpisodeEngine::Start(std::string_view task_id,
                                                               const v1::EpisodeOptions& options) const {
  if (task_id.empty()) return absl::InvalidArgumentError("task_id is empty");
  constexpr size_t kMaxTaskIdBytes = 256;
  if (task_id.size() > kMaxTaskIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("task_id '", Excerpt(task_id), "' is longer than ",
                                                   kMaxTaskIdBytes, " bytes"));
  }
  const BfclTask* task = catalog_->Find(task_id);
  if (task == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown task id '", std::string(task_id),
                                            "' (ids look like multi_turn_base_0; see ListTasks)"));
  }
  if (task->questions.empty() || task->questions.size() != task->ground_truth.size()) {
    return absl::FailedPreconditionError(absl::StrCat("task ", task->id, " has no turns or mismatched ground truth"));
  }
  v1::EpisodeOptions opts = options;
  if (!v1::OutputFormat_IsValid(opts.output_format())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown output_format ", opts.output_format()));
  }
  if (!v1::RewardKind_IsValid(opts.reward_kind())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown reward_kind ", opts.reward_kind()));
  }
  const double p = opts.augment_probability();
  if (!std::isfinite(p) || p < 0.0 || p > 1.0) {
    return absl::InvalidArgumentError(absl::StrCat("augment_probability must be in [0, 1], got ", p));
  }
  if (opts.max_steps_per_turn() > options_.max_steps_limit) {
    return absl::InvalidArgumentError(absl::StrCat("max_steps_per_turn ", opts.max_steps_per_turn(),
                                                   " exceeds this server's limit ", options_.max_steps_limit));
  }
  if (opts.output_format() == v1::OUTPUT_FORMAT_UNSPECIFIED) opts.set_output_format(v1::OUTPUT_FORMAT_ENVTUNING);
  if (opts.reward_kind() == v1::REWARD_KIND_UNSPECIFIED) opts.set_reward_kind(v1::REWARD_KIND_PROGRESS);
  const EpisodeSemantics& semantics = SemanticsFor(opts);
  if (opts.max_steps_per_turn() == 0) opts.set_max_steps_per_turn(semantics.default_max_steps());
  const bool augment = semantics.allows_augmentation() && DecideAugment(opts.seed(), task->id, p);
  absl::StatusOr<std::shared_ptr<const TaskCache>> cache = GetTaskCache(*task, augment);
  if (!cache.ok()) return cache.status();

  v1::StartEpisodeResponse resp;
  const v1::OutputFormat format = opts.output_format();
  std::shared_ptr<const TaskPrompts> prompts = Prompts(**cache, *task, format);
  if (prompts->system.has_value())
    AddChatMessage(resp.mutable_messages(), "system", *prompts->system);
  AddTurnMessages(*task, 0, prompts->opening, "", resp.mutable_messages());
  SetTools(prompts->tools.at(0), resp.mutable_tools_json());
  resp.set_num_turns(static_cast<uint32_t>(task->questions.size()));
  resp.set_augmented(augment);

  v1::EpisodeState state;
  state.set_version(kStateVersion);
  state.set_task_id(task->id);
  *state.mutable_options() = opts;
  state.set_augmented(augment);
  resp.set_episode_state(Seal(state));
  return resp;
}

absl::StatusOr<EpisodeEngine::StepInput> EpisodeEngine::OpenForStep(std::string_view blob) const {
  StepInput in;
  // A blob this engine sealed and cached needs neither verification nor parsing.
  in.episode = TakeEpisode(blob);
  v1::EpisodeState opened;
  if (in.episode == nullptr) {
    absl::StatusOr<v1::EpisodeState> state = Open(blob);
    if (!state.ok()) return state.status();
    opened = *std::move(state);
  }
  const v1::EpisodeState& s = in.episode != nullptr ? in.episode->state : opened;
  if (s.ended()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the episode of task ", s.task_id(), " has already ended; start a new episode"));
  }
  in.task = catalog_->Find(s.task_id());
  if (in.task == nullptr) {
    return absl::NotFoundError(absl::StrCat("episode_state names task '", s.task_id(), "', unknown to this server"));
  }
  const size_t num_turns = in.task->questions.size();
  if (s.turn_index() >= num_turns || in.task->ground_truth.size() != num_turns) {
    return absl::InvalidArgumentError("episode_state turn index is out of range for its task");
  }
  absl::StatusOr<std::shared_ptr<const TaskCache>> cache = GetTaskCache(*in.task, s.augmented());
  if (!cache.ok()) return cache.status();
  in.cache = *std::move(cache);
  if (in.episode != nullptr) return in;
  // Not from the episode cache: rebuild the model side (initial sandbox + every executed step).
  in.episode =
      std::make_unique<EpisodeEntry>(EpisodeEntry{in.cache->initial, {}, {}, std::move(opened)});
  for (const v1::ExecutedStep& step : in.episode->state.steps()) {
    for (const std::string& call : step.calls()) {
      in.episode->all_results.push_back(in.episode->model.ExecuteCall(call).result);
    }
  }
  return in;
}

void EpisodeEngine::EndTurn(const TurnEnd& end, const EpisodeSemantics& semantics, StepInput& in,
                            v1::StepResponse* resp) const {
  v1::EpisodeState& s = in.episode->state;
  const int t = static_cast<int>(s.turn_index());
  v1::TurnScore ts;
  ts.set_turn_index(s.turn_index());
  ts.set_cannot_serve(in.task->ground_truth[t].empty());
  ts.set_executed_calls(s.executed_in_turn() > 0);
  ts.set_end_reason(end.reason);
  double score = 0.0;
  if (ts.cannot_serve()) {
    score = semantics.CannotServeScore(end.reason);
  } else if (s.executed_in_turn() > 0) {
    const ReplayTurn& truth = in.cache->truth.turns[t];
    ts.set_state_ok(StatesMatch(in.episode->model, truth.state, in.cache->truth_is_initial[t]));
    ts.set_response_ok(MultisetContains(in.episode->all_results, truth.records));
    score = ts.state_ok() && ts.response_ok() ? 1.0 : 0.0;
  }
  ts.set_score(score);
  *s.add_turn_scores() = ts;
  *resp->mutable_turn_score() = ts;
  resp->set_turn_ended(true);
  v1::RewardComponents* comp = s.mutable_components();
  comp->set_turns_finished(comp->turns_finished() + 1);
  if (score > 0.5) comp->set_turns_scored_one(comp->turns_scored_one() + 1);
  comp->set_entries(comp->entries() + 1);
  s.set_attempts(0);
  s.set_executed_in_turn(0);
  s.set_replies_in_turn(0);
  s.set_turn_index(s.turn_index() + 1);
  if (end.force_quit || s.turn_index() >= in.task->questions.size()) {
    s.set_ended(true);
    s.set_force_quit(end.force_quit);
    resp->set_episode_ended(true);
    return;
  }
  const int next = static_cast<int>(s.turn_index());
  std::shared_ptr<const TaskPrompts> prompts =
      Prompts(*in.cache, *in.task, s.options().output_format());
  AddTurnMessages(*in.task, next, prompts->opening, end.warn_next ? CannotServeWarning() : "",
                  resp->mutable_observation());
  if (auto it = prompts->tools.find(next); it != prompts->tools.end() && next != 0) {
    SetTools(it->second, resp->mutable_tools_json());
  }
}

absl::StatusOr<v1::StepResponse> EpisodeEngine::Step(std::string_view episode_state,
                                                     std::string_view model_output) const {
  if (model_output.size() > options_.max_model_output_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("model_output is ", model_output.size(),
                                                   " bytes; the limit is ",
                                                   options_.max_model_output_bytes));
  }
  absl::StatusOr<StepInput> in = OpenForStep(episode_state);
  if (!in.ok()) return in.status();
  EpisodeEntry& episode = *in->episode;
  v1::EpisodeState& s = episode.state;
  const ReplyFormat& format = ReplyFormatFor(s.options().output_format());
  const EpisodeSemantics& semantics = SemanticsFor(s.options());

  DecodeResult decoded = DecodeReply(format, model_output, options_.max_calls_per_step);
  const StepContext ctx{&format,
                        &episode.model,
                        &episode.all_results,
                        in->task->ground_truth[s.turn_index()].empty(),
                        options_.max_result_bytes,
                        options_.max_observation_bytes};
  v1::StepResponse resp;
  if (std::optional<TurnEnd> end = semantics.Apply(std::move(decoded), ctx, &s, &resp)) {
    EndTurn(*end, semantics, *in, &resp);
  }

  double reward = 0.0;
  FinalizeComponents(s, in->task->questions.size(), resp.mutable_components(), &reward);
  resp.set_episode_reward(reward);
  resp.set_episode_state(Seal(s));
  if (!s.ended() && options_.episode_cache_capacity > 0) {
    episode.blob = resp.episode_state();
    PutEpisode(std::move(in->episode));
  }
  return resp;
}

}  // namespace envtune
