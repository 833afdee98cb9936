// `envtune model ...` commands (deploy/commands/model_command.h) and the model tools under them
// (model/model_tools.h): tiny init, tokenize/generate JSON lines, convert, exit codes.
#include "deploy/commands/model_command.h"

#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "model/model_tools.h"
#include "model/qwen2.h"
#include "model/safetensors.h"
#include "model/text/text_tools.h"
#include "nlohmann/json.hpp"
#include "tests/model/tiny_test_model.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string TempDir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("envtune_cli_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

std::vector<Json> Lines(const std::string& text) {
  std::vector<Json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(Json::parse(line));
  return out;
}

class ModelCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer("");
    if (!tok.ok()) return;
    tokenizer_ = tok->release();
    dir_ = new std::string(TempDir("tiny"));
    const TinyQwen2Spec spec = TestTinySpec();
    init_status_ = new absl::Status(InitTinyQwen2(spec, *tokenizer_, *dir_, /*seed=*/7));
  }
  static void TearDownTestSuite() {
    if (dir_ != nullptr) fs::remove_all(*dir_);
  }
  void SetUp() override {
    if (tokenizer_ == nullptr) GTEST_SKIP() << "shipped tokenizer not found (ENVTUNE_SOURCE_DIR)";
    ASSERT_TRUE(init_status_->ok()) << *init_status_;
  }
  static Tokenizer* tokenizer_;
  static std::string* dir_;
  static absl::Status* init_status_;
};
Tokenizer* ModelCliTest::tokenizer_ = nullptr;
std::string* ModelCliTest::dir_ = nullptr;
absl::Status* ModelCliTest::init_status_ = nullptr;

TEST_F(ModelCliTest, InitWritesLoadableTinyQwen2WithTokenizerVocab) {
  absl::StatusOr<Policy> p = LoadPolicy(*dir_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->config().vocab_size, tokenizer_->vocab_size());
  EXPECT_EQ((*p)->config().model_type, "qwen2");
  EXPECT_EQ((*p)->config().hidden_size, 16);
  EXPECT_TRUE(fs::exists(fs::path(*dir_) / "config.json"));
  EXPECT_TRUE(fs::exists(fs::path(*dir_) / "model.safetensors"));
  // Random, not zeros.
  EXPECT_GT((*p)->model->embed_weight.abs().sum().item<double>(), 0.0);
}

TEST_F(ModelCliTest, TokenizeRoundTripsAndReportsBadLines) {
  std::istringstream in(
      "{\"text\": \"Hello, world!\"}\n\nnot json\n{\"text\": \"<|im_start|>user\\nhi<|im_end|>\"}\n");
  std::ostringstream out;
  EXPECT_EQ(TokenizeJsonLines(*tokenizer_, in, out), 1);
  std::vector<Json> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["text"], "Hello, world!");
  EXPECT_EQ(lines[0]["decoded"], "Hello, world!");
  EXPECT_EQ(lines[0]["ids"], Json::parse("[9707, 11, 1879, 0]"));
  EXPECT_TRUE(lines[1].contains("error"));
  EXPECT_EQ(lines[1]["line"], 3);
  EXPECT_EQ(lines[2]["decoded"], "<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(lines[2]["ids"][0], *tokenizer_->TokenToId("<|im_start|>"));
}

TEST_F(ModelCliTest, GenerateIsGreedyByDefaultAndDeterministic) {
  absl::StatusOr<Policy> p = LoadPolicy(*dir_);
  ASSERT_TRUE(p.ok()) << p.status();
  GenerateCliOptions o;
  o.max_new_tokens = 6;
  const std::string input =
      "{\"prompt\": \"<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n\"}\n"
      "{\"prompt_ids\": [9707, 11, 1879], \"max_new_tokens\": 3}\n"
      "{\"prompt_ids\": [9707], \"temperature\": 0.8, \"seed\": 3}\n"
      "{\"prompt_ids\": [-1]}\n";
  std::string first;
  for (int run = 0; run < 2; ++run) {
    std::istringstream in(input);
    std::ostringstream out;
    EXPECT_EQ(GenerateJsonLines(**p, *tokenizer_, o, in, out), 1);
    if (run == 0) {
      first = out.str();
    } else {
      EXPECT_EQ(out.str(), first);  // greedy and seeded sampling are reproducible
    }
  }
  std::vector<Json> lines = Lines(first);
  ASSERT_EQ(lines.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(lines[i].contains("ids")) << lines[i].dump();
    EXPECT_EQ(lines[i]["ids"].size(), lines[i]["logprobs"].size());
    for (const Json& lp : lines[i]["logprobs"]) EXPECT_LE(lp.get<double>(), 0.0);
  }
  EXPECT_LE(lines[0]["ids"].size(), 6u);
  EXPECT_LE(lines[1]["ids"].size(), 3u);
  // Greedy: the first token is the argmax of the model's logits.
  at::Tensor logits = (*p)->forward(torch::tensor({9707, 11, 1879}, torch::kLong).unsqueeze(0));
  EXPECT_EQ(lines[1]["ids"][0].get<int64_t>(), logits[0][-1].argmax().item<int64_t>());
  // Text is the decoding of the ids.
  std::vector<TokenId> ids = lines[1]["ids"].get<std::vector<TokenId>>();
  EXPECT_EQ(lines[1]["text"], *tokenizer_->Decode(ids));
  EXPECT_TRUE(lines[3].contains("error"));
}

TEST_F(ModelCliTest, ConvertBetweenDtypesAndShardings) {
  const std::string bf16 = TempDir("bf16"), back = TempDir("back");
  ASSERT_TRUE(ConvertCheckpoint(*dir_, bf16, "bf16", 1 << 20).ok());
  EXPECT_TRUE(fs::exists(fs::path(bf16) / "model.safetensors.index.json"));
  absl::StatusOr<TensorMap> orig = ReadSafetensorsDir(*dir_);
  absl::StatusOr<TensorMap> half = ReadSafetensorsDir(bf16);
  ASSERT_TRUE(orig.ok() && half.ok());
  ASSERT_EQ(orig->size(), half->size());
  for (const auto& [name, t] : *orig) {
    ASSERT_TRUE(half->count(name)) << name;
    EXPECT_EQ(half->at(name).scalar_type(), c10::kBFloat16);
    EXPECT_TRUE(torch::equal(half->at(name), t.to(c10::kBFloat16))) << name;
  }
  absl::StatusOr<Policy> loaded = LoadPolicy(bf16);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->dtype(), c10::kBFloat16);
  ASSERT_TRUE(ConvertCheckpoint(bf16, back, "fp32", 0).ok());
  EXPECT_TRUE(fs::exists(fs::path(back) / "model.safetensors"));
  absl::StatusOr<TensorMap> full = ReadSafetensorsDir(back);
  ASSERT_TRUE(full.ok());
  for (const auto& [name, t] : *full) {
    EXPECT_EQ(t.scalar_type(), c10::kFloat);
    EXPECT_TRUE(torch::equal(t, half->at(name).to(c10::kFloat))) << name;
  }
  EXPECT_FALSE(ConvertCheckpoint(*dir_, back, "int8", 0).ok());
  EXPECT_FALSE(ConvertCheckpoint(*dir_ + "/missing", back, "fp32", 0).ok());
  fs::remove_all(bf16);
  fs::remove_all(back);
}

TEST_F(ModelCliTest, CommandExitCodes) {
  std::istringstream in;
  std::ostringstream out, err;
  EXPECT_EQ(RunModelCommand({}, in, out, err), 2);
  EXPECT_EQ(RunModelCommand({"bogus"}, in, out, err), 2);
  EXPECT_EQ(RunModelCommand({"tokenize", "--nope"}, in, out, err), 2);
  EXPECT_EQ(RunModelCommand({"convert", "--model", *dir_}, in, out, err), 2);
  EXPECT_EQ(RunModelCommand({"generate"}, in, out, err), 2);
  // init with an unknown model key is a configuration error.
  const std::string cfg = TempDir("cfg") + ".yaml";
  { std::ofstream(cfg) << "model:\n  tiny: {hidden_size: 8, bogus: 1}\nlearner: {lr: 1}\n"; }
  EXPECT_EQ(RunModelCommand({"init", "--config", cfg, "--out", TempDir("bad")}, in, out, err), 2);
  EXPECT_NE(err.str().find("bogus"), std::string::npos) << err.str();
  // A valid one works through the command.
  const std::string out_dir = TempDir("init");
  { std::ofstream(cfg) << "model:\n  tiny: {hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1,"
                           " num_attention_heads: 2, num_key_value_heads: 1}\n  seed: 3\n"; }
  EXPECT_EQ(RunModelCommand({"init", "--config", cfg, "--out", out_dir}, in, out, err), 0) << err.str();
  absl::StatusOr<ModelConfig> c = LoadModelConfig(out_dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 8);
  fs::remove_all(out_dir);
  fs::remove(cfg);
  // tokenize through the command.
  std::istringstream tin("{\"text\": \"a b\"}\n");
  std::ostringstream tout;
  EXPECT_EQ(RunModelCommand({"tokenize"}, tin, tout, err), 0);
  EXPECT_EQ(Lines(tout.str())[0]["decoded"], "a b");
}

}  // namespace
}  // namespace envtune
