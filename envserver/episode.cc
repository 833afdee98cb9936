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

v1::OutputFormat FormatOf(const v1::EpisodeState& s) { return s.options().output_format(); }

std::string RoleForResults(v1::OutputFormat f) { return f == v1::OUTPUT_FORMAT_ENVTUNING ? "user" : "tool"; }

void AddMessage(google::protobuf::RepeatedPtrField<v1::ChatMessage>* out, std::string role, std::string content,
                std::string name = "") {
  v1::ChatMessage* m = out->Add();
  m->set_role(std::move(role));
  m->set_content(std::move(content));
  if (!name.empty()) m->set_name(std::move(name));
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

std::vector<std::string> ToolsJson(const TaskDocs& docs, int turn, v1::OutputFormat format) {
  JsonDumpsOptions opts;
  opts.ensure_ascii = false;
  std::vector<std::string> out;
  for (const PyValue& doc : DocsInForce(docs, turn)) {
    out.push_back(format == v1::OUTPUT_FORMAT_HERMES ? HermesToolJson(doc) : doc.JsonDumps(opts));
  }
  return out;
}

// The user message that opens an empty-question turn (a reveal turn of miss_func).
std::string OpeningOfEmptyTurn(const TaskDocs& docs, int turn, v1::OutputFormat format) {
  auto it = docs.held_out.find(turn);
  const PyList revealed = it == docs.held_out.end() ? PyList{} : it->second;
  if (revealed.empty()) return "";  // an empty turn that reveals nothing (not in BFCL data)
  return format == v1::OUTPUT_FORMAT_HERMES           ? std::string(kRevealSentence)
         : format == v1::OUTPUT_FORMAT_BFCL_PROMPTING ? BfclRevealMessage(revealed)
                                                      : EnvTuningRevealMessage(revealed);
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
    AddMessage(out, "user", prefix + (it == openings.end() ? std::string() : it->second));
    return;
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    AddMessage(out, msgs[i].role, (i == 0 ? prefix : std::string()) + msgs[i].content);
  }
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
  if (format != v1::OUTPUT_FORMAT_HERMES) {
    std::string functions = DocsJsonIndent4(WithPython3Suffix(docs.visible));
    prompts->system = format == v1::OUTPUT_FORMAT_BFCL_PROMPTING ? BfclSystemPrompt(functions)
                                                                 : EnvTuningSystemPrompt(functions);
  }
  prompts->tools[0] = ToolsJson(docs, 0, format);
  for (const auto& [turn, names] : task.missed_function) prompts->tools[turn] = ToolsJson(docs, turn, format);
  for (size_t t = 0; t < task.questions.size(); ++t) {
    if (task.questions[t].empty()) {
      prompts->opening[static_cast<int>(t)] = OpeningOfEmptyTurn(docs, static_cast<int>(t), format);
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
  if (opts.max_steps_per_turn() == 0) {
    opts.set_max_steps_per_turn(opts.bfcl_eval_semantics() ? kDefaultEvalSteps : kDefaultTrainingSteps);
  }
  const bool augment = !opts.bfcl_eval_semantics() && DecideAugment(opts.seed(), task->id, p);
  absl::StatusOr<std::shared_ptr<const TaskCache>> cache = GetTaskCache(*task, augment);
  if (!cache.ok()) return cache.status();

  v1::StartEpisodeResponse resp;
  const v1::OutputFormat format = opts.output_format();
  std::shared_ptr<const TaskPrompts> prompts = Prompts(**cache, *task, format);
  if (format != v1::OUTPUT_FORMAT_HERMES) AddMessage(resp.mutable_messages(), "system", prompts->system);
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

absl::StatusOr<v1::StepResponse> EpisodeEngine::Step(std::string_view episode_state,
                                                     std::string_view model_output) const {
  if (model_output.size() > options_.max_model_output_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("model_output is ", model_output.size(), " bytes; the limit is ",
                                                   options_.max_model_output_bytes));
  }
  // A blob this engine sealed and cached needs neither verification nor parsing.
  std::unique_ptr<EpisodeEntry> episode = TakeEpisode(episode_state);
  v1::EpisodeState s;
  if (episode != nullptr) {
    s = std::move(episode->state);
  } else {
    absl::StatusOr<v1::EpisodeState> opened = Open(episode_state);
    if (!opened.ok()) return opened.status();
    s = *std::move(opened);
  }
  if (s.ended()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the episode of task ", s.task_id(), " has already ended; start a new episode"));
  }
  const BfclTask* task = catalog_->Find(s.task_id());
  if (task == nullptr) {
    return absl::NotFoundError(absl::StrCat("episode_state names task '", s.task_id(), "', unknown to this server"));
  }
  const size_t num_turns = task->questions.size();
  const int t = static_cast<int>(s.turn_index());
  if (s.turn_index() >= num_turns || task->ground_truth.size() != num_turns) {
    return absl::InvalidArgumentError("episode_state turn index is out of range for its task");
  }
  absl::StatusOr<std::shared_ptr<const TaskCache>> cache = GetTaskCache(*task, s.augmented());
  if (!cache.ok()) return cache.status();

  // The model side: from the episode cache, else rebuilt (initial sandbox + every executed step).
  if (episode == nullptr) {
    episode = std::make_unique<EpisodeEntry>(EpisodeEntry{(*cache)->initial, {}, {}, {}});
    for (const v1::ExecutedStep& step : s.steps()) {
      for (const std::string& call : step.calls()) {
        episode->all_results.push_back(episode->model.ExecuteCall(call).result);
      }
    }
  }
  Sandbox& model = episode->model;
  std::vector<std::string>& all_results = episode->all_results;

  const v1::OutputFormat format = FormatOf(s);
  const bool eval = s.options().bfcl_eval_semantics();
  const uint32_t max_steps = s.options().max_steps_per_turn();
  const bool cannot_serve = task->ground_truth[t].empty();

  // Token-level sampling can produce invalid UTF-8; decode it like Python's errors="replace" so
  // that call strings, results and the blob stay valid protobuf strings.
  std::string sanitized;
  if (!IsValidUtf8(model_output)) {
    sanitized = SanitizeUtf8(model_output);
    model_output = sanitized;
  }
  DecodeResult decoded = format == v1::OUTPUT_FORMAT_BFCL_PROMPTING ? DecodeModelOutput(DecodeMode::kBfclPrompting, model_output)
                         : format == v1::OUTPUT_FORMAT_HERMES       ? DecodeHermes(model_output)
                                                                    : DecodeEnvTuning(model_output);
  if (decoded.kind == DecodeResult::Kind::kCalls && decoded.calls.size() > options_.max_calls_per_step) {
    size_t n = decoded.calls.size();
    decoded = DecodeResult{};
    decoded.kind = DecodeResult::Kind::kFormatError;
    decoded.message = absl::StrCat("the reply holds ", n, " calls; at most ", options_.max_calls_per_step,
                                   " are allowed in one step.");
  }

  v1::StepResponse resp;
  resp.set_turn_index(s.turn_index());
  resp.set_step_index(s.replies_in_turn());
  s.set_replies_in_turn(s.replies_in_turn() + 1);
  v1::RewardComponents* comp = s.mutable_components();

  bool end_turn = false;
  v1::TurnEndReason end_reason = v1::TURN_END_REASON_UNSPECIFIED;
  bool warn_next = false;
  bool force_quit = false;

  using Kind = DecodeResult::Kind;
  // A <tool_call> reply whose list is unusable is still a tool-call attempt (envtuning format).
  const bool tool_attempt =
      decoded.kind == Kind::kCalls || (format == v1::OUTPUT_FORMAT_ENVTUNING && decoded.kind == Kind::kNoCall);

  if (decoded.kind == Kind::kFormatError) {
    resp.set_step_signal(-3);
    resp.set_format_error(decoded.message);
    comp->set_format_errors(comp->format_errors() + 1);
    comp->set_entries(comp->entries() + 1);
    s.set_attempts(s.attempts() + 1);
    if (eval) {
      end_turn = true;
      end_reason = v1::TURN_END_REASON_FORMAT_ERROR;
    } else if (s.attempts() > max_steps) {
      end_turn = true;
      end_reason = v1::TURN_END_REASON_FORMAT_LIMIT;
    } else {
      AddMessage(resp.mutable_observation(), "user",
                 CapText(FormatErrorObservation(decoded.message, format == v1::OUTPUT_FORMAT_ENVTUNING),
                         options_.max_observation_bytes));
    }
  } else if (cannot_serve && !eval) {
    end_turn = true;
    if (tool_attempt) {
      end_reason = v1::TURN_END_REASON_CALLED_ON_CANNOT_SERVE;
      warn_next = true;
    } else {
      end_reason = v1::TURN_END_REASON_ANSWER;
    }
  } else if (decoded.kind == Kind::kCalls) {
    std::vector<CallRecord> records;
    records.reserve(decoded.calls.size());
    const bool structured = decoded.structured.size() == decoded.calls.size();
    for (size_t i = 0; i < decoded.calls.size(); ++i) {
      records.push_back(structured ? model.ExecuteDecoded(std::move(decoded.calls[i]), decoded.structured[i])
                                   : model.ExecuteCall(decoded.calls[i]));
    }
    v1::ExecutedStep* step = s.add_steps();
    step->set_turn(s.turn_index());
    bool raised = false;
    std::vector<std::string> shown;
    for (CallRecord& r : records) {
      step->add_calls(r.call);
      v1::CallResult* cr = resp.add_calls();
      cr->set_call(r.call);
      cr->set_result(r.result);
      cr->set_raised(r.raised);
      cr->set_api_class(r.served_by);
      raised = raised || r.raised;
      shown.push_back(CapText(r.result, options_.max_result_bytes));
      all_results.push_back(std::move(r.result));
    }
    resp.set_step_signal(raised ? -2 : -1);
    if (raised) {
      comp->set_error_steps(comp->error_steps() + 1);
    } else {
      comp->set_clean_steps(comp->clean_steps() + 1);
    }
    comp->set_entries(comp->entries() + 1);
    s.set_attempts(s.attempts() + 1);
    s.set_executed_in_turn(s.executed_in_turn() + 1);
    if (eval && s.executed_in_turn() > max_steps) {
      end_turn = true;
      end_reason = v1::TURN_END_REASON_FORCE_QUIT;
      force_quit = true;
    } else if (!eval && s.attempts() > max_steps) {
      end_turn = true;
      end_reason = v1::TURN_END_REASON_STEP_LIMIT;
    } else if (format == v1::OUTPUT_FORMAT_ENVTUNING) {
      AddMessage(resp.mutable_observation(), "user",
                 CapText(ToolResultsObservation(shown), options_.max_observation_bytes));
    } else {
      for (size_t i = 0; i < shown.size(); ++i) {
        AddMessage(resp.mutable_observation(), RoleForResults(format), std::move(shown[i]), records[i].call);
      }
    }
  } else {
    end_turn = true;
    end_reason =
        decoded.kind == Kind::kAnswer ? v1::TURN_END_REASON_ANSWER : v1::TURN_END_REASON_NO_CALL;
  }

  if (end_turn) {
    v1::TurnScore ts;
    ts.set_turn_index(s.turn_index());
    ts.set_cannot_serve(cannot_serve);
    ts.set_executed_calls(s.executed_in_turn() > 0);
    ts.set_end_reason(end_reason);
    double score = 0.0;
    if (cannot_serve) {
      // Training: only a plain answer is right. BFCL evaluation: the turn is not checked.
      score = eval || end_reason == v1::TURN_END_REASON_ANSWER ? 1.0 : 0.0;
    } else if (s.executed_in_turn() > 0) {
      const ReplayTurn& truth = (*cache)->truth.turns[t];
      ts.set_state_ok(StatesMatch(model, truth.state, (*cache)->truth_is_initial[t]));
      ts.set_response_ok(MultisetContains(all_results, truth.records));
      score = ts.state_ok() && ts.response_ok() ? 1.0 : 0.0;
    }
    ts.set_score(score);
    *s.add_turn_scores() = ts;
    *resp.mutable_turn_score() = ts;
    resp.set_turn_ended(true);
    comp->set_turns_finished(comp->turns_finished() + 1);
    if (score > 0.5) comp->set_turns_scored_one(comp->turns_scored_one() + 1);
    comp->set_entries(comp->entries() + 1);
    s.set_attempts(0);
    s.set_executed_in_turn(0);
    s.set_replies_in_turn(0);
    s.set_turn_index(s.turn_index() + 1);
    if (force_quit || s.turn_index() >= num_turns) {
      s.set_ended(true);
      s.set_force_quit(force_quit);
      resp.set_episode_ended(true);
    } else {
      const int next = static_cast<int>(s.turn_index());
      std::shared_ptr<const TaskPrompts> prompts = Prompts(**cache, *task, format);
      AddTurnMessages(*task, next, prompts->opening, warn_next ? CannotServeWarning() : "",
                      resp.mutable_observation());
      if (auto it = prompts->tools.find(next); it != prompts->tools.end() && next != 0) {
        SetTools(it->second, resp.mutable_tools_json());
      }
    }
  }

  double reward = 0.0;
  FinalizeComponents(s, num_turns, resp.mutable_components(), &reward);
  resp.set_episode_reward(reward);
  resp.set_episode_state(Seal(s));
  if (!s.ended() && options_.episode_cache_capacity > 0) {
    episode->blob = resp.episode_state();
    episode->state = std::move(s);
    PutEpisode(std::move(episode));
  }
  return resp;
}

}  // namespace envtune
