// SFT on ground-truth trajectories: assistant-only masks, data from the ground-truth policy in both
// formats, a tiny run whose loss falls and whose checkpoint loads (config checking:
// tests/deploy/commands/sft_command_test.cc).
#include "learner/sft.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "model/qwen2.h"
#include "model/text/chat_template.h"
#include "model/text/text_tools.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

std::string SourceDir() {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  return s != nullptr ? s : ".";
}
std::string Temp(const std::string& name) {
  return (fs::temp_directory_path() / ("envtune_sft_test_" + name + "_" + std::to_string(::getpid()))).string();
}

class SftTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer("");
    if (!tok.ok()) GTEST_SKIP() << "shipped tokenizer not found";
    tokenizer_ = std::move(*tok);
  }
  std::unique_ptr<Tokenizer> tokenizer_;
};

std::string MaskedText(const Tokenizer& tok, const SftExample& ex, uint8_t which) {
  std::vector<TokenId> ids;
  for (size_t i = 0; i < ex.ids.size(); ++i) {
    if (ex.mask[i] == which) ids.push_back(static_cast<TokenId>(ex.ids[i]));
  }
  return *tok.Decode(ids);
}

TEST_F(SftTest, RendersWithTheChatTemplateAndMasksAssistantTokensOnly) {
  Json messages = Json::parse(R"J([
    {"role": "system", "content": "You are a tool user."},
    {"role": "user", "content": "List files."},
    {"role": "assistant", "content": "[ls()]"},
    {"role": "tool", "name": "ls()", "content": "{\"current_directory_content\": []}"},
    {"role": "assistant", "content": "Nothing there."},
    {"role": "user", "content": "Thanks"},
    {"role": "assistant", "content": "You are welcome."}
  ])J");
  absl::StatusOr<SftExample> ex = RenderSftExample(*tokenizer_, messages, 100000);
  ASSERT_TRUE(ex.ok()) << ex.status();
  ASSERT_EQ(ex->ids.size(), ex->mask.size());
  absl::StatusOr<std::string> full = RenderQwen25Chat(messages, Json(), false);
  ASSERT_TRUE(full.ok());
  std::vector<TokenId> all(ex->ids.begin(), ex->ids.end());
  EXPECT_EQ(*tokenizer_->Decode(all), *full);
  EXPECT_EQ(MaskedText(*tokenizer_, *ex, 1),
            "[ls()]<|im_end|>Nothing there.<|im_end|>You are welcome.<|im_end|>");
  // Truncation.
  absl::StatusOr<SftExample> cut = RenderSftExample(*tokenizer_, messages, 10);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->ids.size(), 10u);
  EXPECT_EQ(cut->mask.size(), 10u);
  EXPECT_FALSE(RenderSftExample(*tokenizer_, Json::array(), 10).ok());
  // Only the first two replies: the conversation ends after "Nothing there.<|im_end|>\n".
  absl::StatusOr<SftExample> two = RenderSftExample(*tokenizer_, messages, 100000, 2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(MaskedText(*tokenizer_, *two, 1), "[ls()]<|im_end|>Nothing there.<|im_end|>");
  std::vector<TokenId> two_ids(two->ids.begin(), two->ids.end());
  EXPECT_EQ(*tokenizer_->Decode(two_ids),
            *RenderQwen25Chat(Json(std::vector<Json>(messages.begin(), messages.begin() + 5)),
                              Json(), false));
}

TEST_F(SftTest, BuildsExamplesFromGroundTruthInBothFormats) {
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(SourceDir() + "/data/bfcl");
  if (!catalog.ok()) GTEST_SKIP() << "BFCL data not found";
  const std::vector<std::string> ids = {"multi_turn_base_0", "multi_turn_miss_func_0"};
  for (v1::OutputFormat f : {v1::OUTPUT_FORMAT_ENVTUNING, v1::OUTPUT_FORMAT_BFCL_PROMPTING}) {
    absl::StatusOr<std::vector<SftExample>> ex = BuildSftExamples(*catalog, *tokenizer_, ids, f, 1 << 20);
    ASSERT_TRUE(ex.ok()) << ex.status();
    ASSERT_EQ(ex->size(), 2u);
    for (const SftExample& e : *ex) {
      const std::string trained = MaskedText(*tokenizer_, e, 1);
      const std::string context = MaskedText(*tokenizer_, e, 0);
      if (f == v1::OUTPUT_FORMAT_ENVTUNING) {
        EXPECT_NE(trained.find("<tool_call>[{\"name\": "), std::string::npos) << e.task_id;
        EXPECT_NE(trained.find("<answer>"), std::string::npos);
      } else {
        EXPECT_EQ(trained.rfind("[", 0), 0u) << trained.substr(0, 80);
      }
      // Prompts and observations are context only.
      EXPECT_NE(context.find("<|im_start|>system\n"), std::string::npos);
      EXPECT_EQ(trained.find("<|im_start|>"), std::string::npos);
    }
  }
}

TEST_F(SftTest, TinyRunLowersTheLossAndWritesALoadableCheckpoint) {
  if (!fs::exists(SourceDir() + "/data/splits/train.txt")) GTEST_SKIP() << "data not found";
  SftOptions o;
  o.tiny.hidden_size = 16;
  o.tiny.intermediate_size = 32;
  o.tiny.num_hidden_layers = 1;
  o.tiny.num_attention_heads = 2;
  o.tiny.num_key_value_heads = 1;
  o.tokenizer = "";
  o.data_dir = SourceDir() + "/data";
  o.categories = {"base"};
  o.limit = 1;
  o.epochs = 3;
  o.lr = 3e-3;
  o.max_length = 8192;
  o.batch_tokens = 1 << 16;
  o.output_dir = Temp("out");
  std::ostringstream log;
  absl::StatusOr<SftResult> r = RunSft(o, &log);
  ASSERT_TRUE(r.ok()) << r.status() << log.str();
  EXPECT_EQ(r->examples, 1);
  EXPECT_GT(r->trained_tokens, 0);
  ASSERT_EQ(r->epoch_loss.size(), 3u);
  EXPECT_EQ(r->steps, 3);
  EXPECT_LT(r->epoch_loss.back(), r->epoch_loss.front()) << log.str();
  absl::StatusOr<Policy> p = LoadPolicy(o.output_dir);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->config().vocab_size, tokenizer_->vocab_size());
  fs::remove_all(o.output_dir);
}

}  // namespace
}  // namespace envtune
