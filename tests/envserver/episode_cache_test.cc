// The speed paths of the episode engine give the bytes the plain paths give: the episode cache
// (hits, misses, blobs used twice, forged blobs under a cached tag), the parse memo of rebuilds
// (including calls that do not parse), structured execution of
// decoded calls (Sandbox::ExecuteDecoded vs ExecuteCall), the file-system state comparison
// without building the state, and the decoder's choice of when a call may run structured.
#include <memory>
#include <string>
#include <vector>

#include "envserver/decode.h"
#include "envserver/episode.h"
#include "envserver/executor.h"
#include "gtest/gtest.h"
#include "tests/envserver/episode_test_util.h"

namespace envtune {
namespace {

using testing_util::Answer;
using testing_util::HaveData;
using testing_util::ToolCall;

std::string Bytes(const google::protobuf::Message& m) {
  std::string out;
  EXPECT_TRUE(m.SerializeToString(&out));
  return out;
}

class EpisodeCacheTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!HaveData()) return;
    absl::StatusOr<TaskCatalog> c = TaskCatalog::Load(testing_util::DataDir() + "/bfcl");
    ASSERT_TRUE(c.ok()) << c.status();
    catalog_ = new TaskCatalog(*std::move(c));
    EpisodeEngineOptions cached;
    cached.hmac_key = "test-key";
    EpisodeEngineOptions memo = cached;
    memo.episode_cache_capacity = 0;  // rebuilds every step, through the parse memo
    EpisodeEngineOptions plain = memo;
    plain.parse_cache_capacity = 0;  // rebuilds every step, parsing every call
    cached_ = new EpisodeEngine(catalog_, cached);
    memo_ = new EpisodeEngine(catalog_, memo);
    plain_ = new EpisodeEngine(catalog_, plain);
  }
  void SetUp() override {
    if (catalog_ == nullptr) GTEST_SKIP() << "BFCL data not found under " << testing_util::DataDir();
  }

  // Replies that exercise every branch: the ground truth of each turn, preceded on the first
  // turn by a failing call, a call whose string argument holds '(' (executed from its string), a
  // format error, and an unknown function; then an answer per turn.
  static std::vector<std::string> Replies(const BfclTask& task) {
    std::vector<std::string> out = {
        ToolCall(R"j([{"name": "cd", "arguments": {"folder": "no_such_dir"}}])j"),
        ToolCall(R"j([{"name": "mkdir", "arguments": {"dir_name": "a(b)"}}])j"),
        "no tags at all",
        ToolCall(R"j([{"name": "not_a_function", "arguments": {"x": 1.5}}])j"),
        ToolCall(R"j([{"name": "lambda", "arguments": {}}, {"name": "None", "arguments": {"x": 1}}])j"),
    };
    for (const auto& calls : task.ground_truth) {
      if (!calls.empty()) {
        absl::StatusOr<std::string> r = testing_util::GroundTruthReply(*catalog_, task, calls);
        if (r.ok()) out.push_back(*r);
      }
      out.push_back(Answer());
    }
    return out;
  }

  static TaskCatalog* catalog_;
  static EpisodeEngine* cached_;
  static EpisodeEngine* memo_;
  static EpisodeEngine* plain_;
};
TaskCatalog* EpisodeCacheTest::catalog_ = nullptr;
EpisodeEngine* EpisodeCacheTest::cached_ = nullptr;
EpisodeEngine* EpisodeCacheTest::memo_ = nullptr;
EpisodeEngine* EpisodeCacheTest::plain_ = nullptr;

TEST_F(EpisodeCacheTest, CachedAndRebuiltStepsGiveTheSameBytes) {
  int steps = 0;
  for (const std::string& category : TaskCatalog::Categories()) {
    std::vector<const BfclTask*> tasks = catalog_->ByCategory(category);
    for (size_t k = 0; k < tasks.size() && k < 12; ++k) {
      for (double p : {0.0, 1.0}) {
        v1::EpisodeOptions o;
        o.set_augment_probability(p);
        o.set_max_steps_per_turn(20);
        absl::StatusOr<v1::StartEpisodeResponse> a = cached_->Start(tasks[k]->id, o);
        absl::StatusOr<v1::StartEpisodeResponse> b = plain_->Start(tasks[k]->id, o);
        ASSERT_TRUE(a.ok() && b.ok()) << tasks[k]->id;
        ASSERT_EQ(Bytes(*a), Bytes(*b)) << tasks[k]->id;
        std::string blob = a->episode_state();
        for (const std::string& reply : Replies(*tasks[k])) {
          absl::StatusOr<v1::StepResponse> x = cached_->Step(blob, reply);
          absl::StatusOr<v1::StepResponse> y = plain_->Step(blob, reply);
          absl::StatusOr<v1::StepResponse> z = memo_->Step(blob, reply);
          ASSERT_TRUE(x.ok()) << tasks[k]->id << ": " << x.status();
          ASSERT_TRUE(y.ok()) << tasks[k]->id << ": " << y.status();
          ASSERT_TRUE(z.ok()) << tasks[k]->id << ": " << z.status();
          ASSERT_EQ(Bytes(*x), Bytes(*y)) << tasks[k]->id << " step " << x->step_index() << " turn " << x->turn_index();
          ASSERT_EQ(Bytes(*z), Bytes(*y)) << tasks[k]->id << " step " << z->step_index() << " turn " << z->turn_index();
          ++steps;
          blob = x->episode_state();
          if (x->episode_ended()) break;
        }
      }
    }
  }
  EXPECT_GT(steps, 1000);
}

TEST_F(EpisodeCacheTest, ABlobSteppedTwiceGivesTheSameResponse) {
  const BfclTask* task = catalog_->Find("multi_turn_base_42");
  ASSERT_NE(task, nullptr);
  absl::StatusOr<v1::StartEpisodeResponse> s = cached_->Start(task->id, v1::EpisodeOptions());
  ASSERT_TRUE(s.ok());
  std::vector<std::string> replies = Replies(*task);
  // Step 1 puts the model side under blob1; stepping blob1 takes it (a hit), stepping blob1 again
  // finds nothing (a miss) and rebuilds: both answers are the same bytes.
  absl::StatusOr<v1::StepResponse> first = cached_->Step(s->episode_state(), replies[0]);
  ASSERT_TRUE(first.ok());
  const std::string blob1 = first->episode_state();
  absl::StatusOr<v1::StepResponse> hit = cached_->Step(blob1, replies[4]);
  absl::StatusOr<v1::StepResponse> miss = cached_->Step(blob1, replies[4]);
  ASSERT_TRUE(hit.ok() && miss.ok());
  EXPECT_EQ(Bytes(*hit), Bytes(*miss));
  EXPECT_GT(hit->calls_size(), 0);
}

TEST_F(EpisodeCacheTest, AForgedBlobUnderACachedTagIsRejectedAndLeavesTheEntry) {
  absl::StatusOr<v1::StartEpisodeResponse> s = cached_->Start("multi_turn_base_42", v1::EpisodeOptions());
  ASSERT_TRUE(s.ok());
  const BfclTask* task = catalog_->Find("multi_turn_base_42");
  std::vector<std::string> replies = Replies(*task);
  absl::StatusOr<v1::StepResponse> first = cached_->Step(s->episode_state(), replies[0]);
  ASSERT_TRUE(first.ok());
  const std::string blob = first->episode_state();
  std::string forged = blob;
  forged[forged.size() / 2] ^= 0x01;  // payload changed, tag (the cache key) kept
  absl::StatusOr<v1::StepResponse> bad = cached_->Step(forged, replies[4]);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<v1::StepResponse> good = cached_->Step(blob, replies[4]);
  absl::StatusOr<v1::StepResponse> reference = plain_->Step(blob, replies[4]);
  ASSERT_TRUE(good.ok() && reference.ok());
  EXPECT_EQ(Bytes(*good), Bytes(*reference));
}

TEST_F(EpisodeCacheTest, ABlobFromAnotherKeyIsRejectedEvenWhenTheTagIsCached) {
  EpisodeEngineOptions other;
  other.hmac_key = "other-key";
  EpisodeEngine foreign(catalog_, other);
  absl::StatusOr<v1::StartEpisodeResponse> s = foreign.Start("multi_turn_base_42", v1::EpisodeOptions());
  ASSERT_TRUE(s.ok());
  absl::StatusOr<v1::StepResponse> r = cached_->Step(s->episode_state(), Answer());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

// Sealing reuses a per-thread HMAC context; engines made and dropped one after another (possibly
// at the same address) with different keys must still seal with their own key.
TEST_F(EpisodeCacheTest, EnginesWithDifferentKeysSealWithTheirOwnKey) {
  std::vector<std::string> blobs;
  for (const char* key : {"k1", "k2", "k1", ""}) {
    EpisodeEngineOptions o;
    o.hmac_key = key;
    auto engine = std::make_unique<EpisodeEngine>(catalog_, o);
    absl::StatusOr<v1::StartEpisodeResponse> s = engine->Start("multi_turn_base_42", v1::EpisodeOptions());
    ASSERT_TRUE(s.ok());
    blobs.push_back(s->episode_state());
  }
  EXPECT_EQ(blobs[0], blobs[2]);
  EXPECT_NE(blobs[0], blobs[1]);
  for (const char* key : {"k1", "k2", ""}) {
    EpisodeEngineOptions o;
    o.hmac_key = key;
    EpisodeEngine engine(catalog_, o);
    const std::string k = key;
    EXPECT_EQ(engine.Open(blobs[0]).ok(), k == "k1") << k;
    EXPECT_EQ(engine.Open(blobs[1]).ok(), k == "k2") << k;
    EXPECT_EQ(engine.Open(blobs[3]).ok(), k.empty()) << k;
  }
}

// ExecuteDecoded gives ExecuteCall's records and leaves the same state, whichever path it takes.
TEST_F(EpisodeCacheTest, StructuredExecutionMatchesCallStrings) {
  const BfclTask* task = catalog_->Find("multi_turn_base_42");
  ASSERT_NE(task, nullptr);
  SandboxContext ctx;
  ctx.long_context_constants = &catalog_->long_context_constants();
  absl::StatusOr<Sandbox> base = Sandbox::Create(task->id, task->involved_classes, task->initial_config,
                                                 task->long_context(), &ctx, SandboxOptions{"envtune_eval"});
  ASSERT_TRUE(base.ok());
  Sandbox by_string = *base;
  Sandbox by_structure = *base;
  const std::vector<std::string> tool_calls = {
      R"j([{"name": "ls", "arguments": {}}])j",
      R"j([{"name": "mkdir", "arguments": {"dir_name": "new"}}, {"name": "cd", "arguments": {"folder": "new"}}])j",
      R"j([{"name": "touch", "arguments": {"file_name": "x.txt"}}, {"name": "pwd", "arguments": {}}])j",
      R"j([{"name": "echo", "arguments": {"content": "a \"quoted\" line\nüñí", "file_name": "x.txt"}}])j",
      R"j([{"name": "cat", "arguments": {"file_name": "x.txt"}}, {"name": "cat", "arguments": {"file_name": "nope"}}])j",
      R"j([{"name": "cd", "arguments": {"folder": 3}}, {"name": "cd", "arguments": {}}])j",
      R"j([{"name": "cd", "arguments": {"folder": "..", "extra": [1, 2.5, null, true, {"k": "v"}]}}])j",
      R"j([{"name": "add", "arguments": {"a": 1, "b": 2.25}}, {"name": "mean", "arguments": {"numbers": [1, 2, 3]}}])j",
      R"j([{"name": "add", "arguments": {"a": 1e308, "b": 1e308}}, {"name": "sqrt", "arguments": {"number": -1}}])j",
      R"j([{"name": "unknown_tool", "arguments": {"a": 1}}, {"name": "print", "arguments": {"x": 1}}])j",
      R"j([{"name": "mkdir", "arguments": {"dir_name": "ls(x)"}}, {"name": "ls", "arguments": {"a": true}}])j",
      R"j([{"name": "ls", "arguments": {"class": 1}}])j",
  };
  int structured_steps = 0;
  for (const std::string& json : tool_calls) {
    DecodeResult d = DecodeEnvTuning(ToolCall(json));
    ASSERT_EQ(d.kind, DecodeResult::Kind::kCalls) << json;
    if (!d.structured.empty()) ++structured_steps;
    for (size_t i = 0; i < d.calls.size(); ++i) {
      CallRecord a = by_string.ExecuteCall(d.calls[i]);
      CallRecord b = d.structured.empty() ? by_structure.ExecuteCall(d.calls[i])
                                          : by_structure.ExecuteDecoded(d.calls[i], d.structured[i]);
      EXPECT_EQ(a.call, b.call);
      EXPECT_EQ(a.result, b.result) << a.call;
      EXPECT_EQ(a.raised, b.raised) << a.call;
      EXPECT_EQ(a.served_by, b.served_by) << a.call;
    }
    EXPECT_EQ(by_string.PublicStates(), by_structure.PublicStates()) << json;
  }
  EXPECT_GE(structured_steps, 9);
}

TEST(DecodeStructuredTest, OnlyCallsWhoseTextCannotMatterRunStructured) {
  auto structured = [](const std::string& json) {
    DecodeResult d = DecodeEnvTuning(ToolCall(json));
    EXPECT_EQ(d.kind, DecodeResult::Kind::kCalls) << json;
    if (!d.structured.empty()) EXPECT_EQ(d.structured.size(), d.calls.size());
    return !d.structured.empty();
  };
  EXPECT_TRUE(structured(R"j([{"name": "f", "arguments": {"a": 1, "b": "x y", "c": [1.5, {"k": null}]}}])j"));
  EXPECT_TRUE(structured(R"j({"name": "f", "arguments": "{\"a\": 1}"})j"));
  EXPECT_FALSE(structured(R"j([{"name": "f", "arguments": {"a": "g(1)"}}])j"));
  EXPECT_FALSE(structured(R"j([{"name": "f", "arguments": {"a": {"g(": 1}}}])j"));
  EXPECT_FALSE(structured(R"j([{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {"from": 1}}])j"));
  EXPECT_FALSE(structured(R"j([{"name": "None", "arguments": {}}])j"));
  DecodeResult d = DecodeEnvTuning(ToolCall(R"j([{"name": "f", "arguments": {"b": 2, "a": "x"}}])j"));
  ASSERT_EQ(d.structured.size(), 1u);
  EXPECT_EQ(d.calls[0], "f(b=2, a='x')");
  EXPECT_EQ(d.structured[0].name, "f");
  ASSERT_EQ(d.structured[0].keywords.size(), 2u);
  EXPECT_EQ(d.structured[0].keywords[0].first, "b");
  EXPECT_EQ(d.structured[0].keywords[1].second, PyValue::Str("x"));
}

// GorillaFileSystem compares its tree with a state without building its own: same answers as
// PublicState() == state, on equal trees, on the initial and later states of many tasks, and on
// states differing in one content, one name, one extra key or the long_context flag.
TEST_F(EpisodeCacheTest, FileSystemStateEqualsAgreesWithPublicState) {
  SandboxContext ctx;
  ctx.long_context_constants = &catalog_->long_context_constants();
  std::vector<PyValue> states;
  std::vector<std::unique_ptr<Sandbox>> sandboxes;
  for (const BfclTask& task : catalog_->tasks()) {
    if (states.size() >= 60) break;
    if (std::find(task.involved_classes.begin(), task.involved_classes.end(), "GorillaFileSystem") ==
        task.involved_classes.end()) {
      continue;
    }
    absl::StatusOr<Sandbox> sb = Sandbox::Create(task.id, task.involved_classes, task.initial_config,
                                                 task.long_context(), &ctx, SandboxOptions{});
    ASSERT_TRUE(sb.ok());
    auto owned = std::make_unique<Sandbox>(*std::move(sb));
    states.push_back(owned->instance("GorillaFileSystem")->PublicState());
    if (!task.ground_truth.empty()) owned->ExecuteCalls(task.ground_truth[0]);
    states.push_back(owned->instance("GorillaFileSystem")->PublicState());
    sandboxes.push_back(std::move(owned));
  }
  ASSERT_GT(sandboxes.size(), 10u);
  // Variants of the first state.
  PyValue changed = states[0];
  PyValue* root = changed.dict().Find("root");
  ASSERT_NE(root, nullptr);
  PyValue renamed = changed;
  renamed.dict().Find("root")->dict().Set("name", PyValue::Str("elsewhere"));
  PyValue extra = changed;
  extra.dict().Find("root")->dict().Set("mode", PyValue::Str("rw"));
  PyValue flag = changed;
  flag.dict().Set("long_context", PyValue::Bool(!flag.dict().Find("long_context")->as_bool()));
  states.push_back(renamed);
  states.push_back(extra);
  states.push_back(flag);
  states.push_back(PyValue::Dict());
  states.push_back(PyValue::Str("root"));
  int equal = 0;
  for (const auto& sb : sandboxes) {
    const ToolApi* fs = sb->instance("GorillaFileSystem");
    const PyValue own = fs->PublicState();
    for (const PyValue& s : states) {
      const bool want = own == s;
      EXPECT_EQ(fs->PublicStateEquals(s), want);
      equal += want ? 1 : 0;
    }
    EXPECT_TRUE(fs->PublicStateEquals(own));
  }
  EXPECT_GT(equal, 0);
}

}  // namespace
}  // namespace envtune
