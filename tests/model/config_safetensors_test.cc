// ModelConfig parsing and the safetensors reader/writer: byte-identical rewrites of HF's own
// files (single and sharded), policy save -> load round trips, and corrupt-file errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "model/config.h"
#include "model/qwen2.h"
#include "model/safetensors.h"
#include "tests/model/golden_util.h"

namespace envtune {
namespace {

using testing::GoldenQwen2Dir;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string FreshDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/envtune_model_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(ConfigTest, ParsesFixtureConfigs) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  auto q = LoadModelConfig(root + "/qwen2-tiny");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(q->vocab_size, 512);
  EXPECT_EQ(q->hidden_size, 64);
  EXPECT_EQ(q->intermediate_size, 176);
  EXPECT_EQ(q->num_hidden_layers, 3);
  EXPECT_EQ(q->num_attention_heads, 4);
  EXPECT_EQ(q->num_key_value_heads, 2);
  EXPECT_EQ(q->head_dim, 16);
  EXPECT_TRUE(q->qkv_bias);
  EXPECT_FALSE(q->o_bias);
  EXPECT_TRUE(q->tie_word_embeddings);
  EXPECT_EQ(q->rope_theta, 1e6);
  EXPECT_EQ(q->rms_norm_eps, 1e-6);
  EXPECT_FALSE(q->bos_token_id.has_value());
  EXPECT_TRUE(q->eos_token_ids.empty());
  EXPECT_EQ(q->rope_scaling.type, RopeScaling::Type::kDefault);

  auto l = LoadModelConfig(root + "/llama-tiny");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->head_dim, 12);
  EXPECT_FALSE(l->qkv_bias || l->o_bias || l->mlp_bias || l->tie_word_embeddings);
  EXPECT_EQ(l->bos_token_id, 1);
  EXPECT_EQ(l->eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(l->generation_eos_token_ids, std::vector<int64_t>{2});

  auto lin = LoadModelConfig(root + "/qwen2-tiny-ropescale");
  ASSERT_TRUE(lin.ok());
  EXPECT_EQ(lin->rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_EQ(lin->rope_scaling.factor, 2.0);
  auto base = RopeInvFreq(*q, 0);
  auto scaled = RopeInvFreq(*lin, 0);
  ASSERT_EQ(base.size(), 8u);
  for (size_t i = 0; i < base.size(); ++i) EXPECT_FLOAT_EQ(scaled[i], base[i] / 2.0f);

  auto l3 = LoadModelConfig(root + "/qwen2-tiny-rope-llama3");
  ASSERT_TRUE(l3.ok());
  EXPECT_EQ(l3->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(l3->rope_scaling.original_max_position_embeddings, 64);
  // All three llama3 branches: kept (short wavelengths), divided (long), smoothed (between).
  auto inv = RopeInvFreq(*l3, 0);
  int kept = 0, divided = 0, smoothed = 0;
  for (size_t i = 0; i < inv.size(); ++i) {
    if (inv[i] == base[i]) {
      ++kept;
    } else if (std::abs(inv[i] - base[i] / 4.0f) <= 1e-12f + 1e-6f * base[i]) {
      ++divided;
    } else {
      ++smoothed;
      EXPECT_LT(inv[i], base[i]);
      EXPECT_GT(inv[i], base[i] / 4.0f);
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
}

TEST(ConfigTest, DynamicScalingGrowsTheBaseBeyondTheContext) {
  auto c = ParseModelConfig(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,
      "num_attention_heads":4,"max_position_embeddings":32,
      "rope_scaling":{"type":"dynamic","factor":2.0}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kDynamic);
  EXPECT_EQ(RopeInvFreq(*c, 16), RopeInvFreq(*c, 32));
  auto longer = RopeInvFreq(*c, 64);
  auto shorter = RopeInvFreq(*c, 32);
  EXPECT_EQ(longer[0], shorter[0]);  // i = 0 is always 1
  EXPECT_LT(longer[1], shorter[1]);
  // base' = base * (2*64/32 - 1)^(16/14)
  const double new_base = 10000.0 * std::pow(3.0, 16.0 / 14.0);
  EXPECT_NEAR(longer[1], 1.0 / std::pow(new_base, 2.0 / 16.0), 1e-6);
}

TEST(ConfigTest, ErrorsNameTheKey) {
  struct Bad {
    const char* json;
    const char* key;
  };
  const Bad cases[] = {
      {R"({"architectures":["GPT2LMHeadModel"]})", "architectures"},
      {R"({"hidden_size":64})", "architectures"},
      {R"({"architectures":["Qwen2ForCausalLM"],"hidden_size":"big"})", "hidden_size"},
      {R"({"architectures":["Qwen2ForCausalLM"],"hidden_size":64,"num_attention_heads":4,
           "num_key_value_heads":3})", "num_key_value_heads"},
      {R"({"architectures":["Qwen2ForCausalLM"],"hidden_size":64,"num_attention_heads":5})",
       "hidden_size"},
      {R"({"architectures":["Qwen2ForCausalLM"],"vocab_size":-3})", "vocab_size"},
      // Sizes no model has: an error instead of an allocation that aborts (bad_alloc).
      {R"({"architectures":["Qwen2ForCausalLM"],"num_hidden_layers":100000000})",
       "\"num_hidden_layers\" must be <= 1024"},
      {R"({"architectures":["Qwen2ForCausalLM"],"vocab_size":10000000000000})", "vocab_size"},
      {R"({"architectures":["Qwen2ForCausalLM"],"intermediate_size":1000000000})",
       "intermediate_size"},
      // Every size within its bound, together 7e13 weights (a 500 GB allocation failed).
      {R"({"architectures":["Qwen2ForCausalLM"],"hidden_size":65536,"intermediate_size":262144,
           "num_hidden_layers":1024,"num_attention_heads":64,"num_key_value_heads":8,
           "vocab_size":2000000})",
       "parameters, more than 1e+12"},
      {R"({"architectures":["Qwen2ForCausalLM"],"rope_scaling":{"rope_type":"yarn","factor":2}})",
       "rope_type"},
      {R"({"architectures":["Qwen2ForCausalLM"],"rope_scaling":{"rope_type":"linear"}})",
       "rope_scaling.factor"},
      {R"({"architectures":["Qwen2ForCausalLM"],"rope_scaling":{"rope_type":"llama3","factor":8}})",
       "rope_scaling"},
      {R"({"architectures":["Qwen2ForCausalLM"],"hidden_act":"gelu"})", "hidden_act"},
      {R"({"architectures":["Qwen2ForCausalLM"],"torch_dtype":"int8"})", "torch_dtype"},
      {R"({"architectures":["Qwen2ForCausalLM"],"use_sliding_window":true})",
       "use_sliding_window"},
      {R"({"architectures":["LlamaForCausalLM"],"attention_bias":"yes"})", "attention_bias"},
      {R"({"architectures":["LlamaForCausalLM"],"eos_token_id":"x"})", "eos_token_id"},
      {R"([1,2])", "JSON object"},
      {R"({not json)", "JSON object"},
  };
  for (const Bad& b : cases) {
    auto c = ParseModelConfig(b.json);
    ASSERT_FALSE(c.ok()) << b.json;
    EXPECT_NE(c.status().message().find(b.key), std::string::npos)
        << b.json << " -> " << c.status();
  }
  EXPECT_FALSE(LoadModelConfig("/nonexistent/dir").ok());
}

TEST(ConfigTest, SerializeRoundTrips) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  for (const char* name : {"qwen2-tiny", "qwen2-tiny-rope-llama3", "llama-tiny"}) {
    auto c = LoadModelConfig(root + "/" + name);
    ASSERT_TRUE(c.ok());
    auto back = ParseModelConfig(SerializeModelConfig(*c));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->vocab_size, c->vocab_size);
    EXPECT_EQ(back->head_dim, c->head_dim);
    EXPECT_EQ(back->tie_word_embeddings, c->tie_word_embeddings);
    EXPECT_EQ(back->rope_scaling.type, c->rope_scaling.type);
    EXPECT_EQ(RopeInvFreq(*back, 0), RopeInvFreq(*c, 0));
    EXPECT_EQ(back->eos_token_ids, c->eos_token_ids);
    // Built from fields only (no source text) it still parses to the same model.
    ModelConfig bare = *c;
    bare.source_json.clear();
    auto from_fields = ParseModelConfig(SerializeModelConfig(bare));
    ASSERT_TRUE(from_fields.ok()) << from_fields.status();
    EXPECT_EQ(RopeInvFreq(*from_fields, 0), RopeInvFreq(*c, 0));
    EXPECT_EQ(from_fields->qkv_bias, c->qkv_bias);
  }
}

TEST(SafetensorsTest, RewriteIsByteIdenticalToHf) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  const std::string dir = FreshDir("rewrite");
  for (const char* file : {"qwen2-tiny/model.safetensors", "qwen2-tiny/bf16/model.safetensors",
                           "llama-tiny/model.safetensors"}) {
    auto tensors = ReadSafetensors(root + "/" + file);
    ASSERT_TRUE(tensors.ok()) << tensors.status();
    std::vector<std::pair<std::string, at::Tensor>> list(tensors->rbegin(), tensors->rend());
    ASSERT_TRUE(WriteSafetensors(dir + "/out.safetensors", list).ok());
    EXPECT_TRUE(Slurp(dir + "/out.safetensors") == Slurp(root + "/" + file)) << file;
  }
  auto bf16 = ReadSafetensors(root + "/qwen2-tiny/bf16/model.safetensors");
  ASSERT_TRUE(bf16.ok());
  EXPECT_EQ(bf16->at("model.norm.weight").scalar_type(), at::kBFloat16);
}

TEST(SafetensorsTest, ShardedSaveMatchesHfSplit) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  auto policy = LoadPolicy(root + "/llama-tiny/sharded");
  ASSERT_TRUE(policy.ok()) << policy.status();
  const std::string dir = FreshDir("sharded");
  // HF saved the fixture with a limit between 168,768 and 177,791 bytes ("170KB").
  ASSERT_TRUE(SavePolicy(**policy, dir, /*max_shard_bytes=*/170000).ok());
  for (const char* f : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                        "model.safetensors.index.json"}) {
    EXPECT_TRUE(Slurp(dir + "/" + f) == Slurp(root + "/llama-tiny/sharded/" + f)) << f;
  }
  auto back = LoadPolicy(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  auto a = (*policy)->named_parameters();
  auto b = (*back)->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& item : a) EXPECT_TRUE(at::equal(item.value(), *b.find(item.key()))) << item.key();
}

TEST(SafetensorsTest, PolicySaveLoadRoundTripIsBitExact) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  for (const char* name : {"qwen2-tiny", "qwen2-tiny/bf16", "qwen2-tiny-rope-llama3"}) {
    auto policy = LoadPolicy(root + "/" + name);
    ASSERT_TRUE(policy.ok()) << policy.status();
    const std::string dir = FreshDir("roundtrip");
    ASSERT_TRUE(SavePolicy(**policy, dir).ok());
    EXPECT_TRUE(std::filesystem::exists(dir + "/generation_config.json"));
    EXPECT_FALSE(std::filesystem::exists(dir + "/model.safetensors.index.json"));
    // Tied model: no lm_head.weight, exactly HF's file.
    EXPECT_TRUE(Slurp(dir + "/model.safetensors") == Slurp(root + "/" + name + "/model.safetensors"));
    auto back = LoadPolicy(dir);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ((*back)->dtype(), (*policy)->dtype());
    EXPECT_EQ((*back)->config().rope_scaling.type, (*policy)->config().rope_scaling.type);
    for (const auto& item : (*policy)->named_parameters()) {
      EXPECT_TRUE(at::equal(item.value(), *(*back)->named_parameters().find(item.key())));
    }
    // Sharded save of the same model loads back bit-exactly too.
    const std::string sdir = FreshDir("roundtrip_sharded");
    ASSERT_TRUE(SavePolicy(**policy, sdir, 50000).ok());
    EXPECT_TRUE(std::filesystem::exists(sdir + "/model.safetensors.index.json"));
    auto sback = LoadPolicy(sdir);
    ASSERT_TRUE(sback.ok()) << sback.status();
    for (const auto& item : (*policy)->named_parameters()) {
      EXPECT_TRUE(at::equal(item.value(), *(*sback)->named_parameters().find(item.key())));
    }
  }
}

TEST(SafetensorsTest, ViewsOutliveTheMapOwner) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  at::Tensor kept;
  double sum = 0;
  {
    auto tensors = ReadSafetensors(root + "/qwen2-tiny/model.safetensors");
    ASSERT_TRUE(tensors.ok());
    kept = tensors->at("model.embed_tokens.weight");
    sum = kept.sum().item<double>();
  }
  EXPECT_EQ(kept.sum().item<double>(), sum);
  kept.mul_(2);  // copy-on-write mapping: allowed, and the file is untouched
  auto again = ReadSafetensors(root + "/qwen2-tiny/model.safetensors");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->at("model.embed_tokens.weight").sum().item<double>(), sum);
}

std::string Header(const std::string& json) {
  std::string h = json;
  while (h.size() % 8) h += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((uint64_t{h.size()} >> (8 * i)) & 0xff);
  return out + h;
}

TEST(SafetensorsTest, CorruptFilesAreClearErrors) {
  const std::string dir = FreshDir("corrupt");
  const std::string path = dir + "/bad.safetensors";
  const std::string data8(8, '\1');
  struct Bad {
    std::string bytes;
    const char* expect;
  };
  const std::vector<Bad> cases = {
      {"", "shorter"},
      {std::string("\x10\x00\x00", 3), "shorter"},
      {std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", "header length"},
      {Header("{not json") + data8, "not a JSON object"},
      {Header(R"({"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}})") + data8, "dtype"},
      {Header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})") + data8, "need 12"},
      {Header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})") + data8, "outside"},
      {Header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})") + data8, "outside"},
      {Header(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})") + data8, "shape"},
      {Header(R"({"a":{"dtype":"F32","shape":[2]}})") + data8, "data_offsets"},
      {Header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                  "b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})") + data8, "overlaps"},
      {Header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})") + data8, "cover"},
      {Header(R"({"__metadata__":[1]})"), "__metadata__"},
      // Element counts that wrap 64 bits ([2^40, 2^40] came out as "need 0 bytes").
      {Header(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,0]}})"),
       "shape too large"},
      {Header(R"({"a":{"dtype":"F32","shape":[1099511627776,16777216,0],"data_offsets":[0,0]}})"),
       "shape too large"},
  };
  for (const Bad& b : cases) {
    Spit(path, b.bytes);
    auto r = ReadSafetensors(path);
    ASSERT_FALSE(r.ok()) << b.expect;
    EXPECT_NE(r.status().message().find(b.expect), std::string::npos) << r.status();
  }
  Spit(path, Header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})") + data8);
  EXPECT_TRUE(ReadSafetensors(path).ok());
  EXPECT_FALSE(ReadSafetensors(dir + "/missing.safetensors").ok());

  // Sharded index pointing at a tensor its shard lacks.
  Spit(dir + "/model-00001-of-00001.safetensors",
       Header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})") + data8);
  Spit(dir + "/model.safetensors.index.json",
       R"({"metadata":{},"weight_map":{"a":"model-00001-of-00001.safetensors",
           "b":"model-00001-of-00001.safetensors"}})");
  auto sharded = ReadSafetensorsDir(dir);
  ASSERT_FALSE(sharded.ok());
  EXPECT_NE(sharded.status().message().find("\"b\""), std::string::npos) << sharded.status();
  Spit(dir + "/model.safetensors.index.json", R"({"weight_map":{"a":"../x"}})");
  EXPECT_FALSE(ReadSafetensorsDir(dir).ok());
}

TEST(PolicyLoadTest, MismatchedCheckpointsAreErrors) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  // llama config + qwen2 weights: shapes differ / keys missing.
  const std::string dir = FreshDir("mismatch");
  std::filesystem::copy_file(root + "/llama-tiny/config.json", dir + "/config.json");
  std::filesystem::copy_file(root + "/qwen2-tiny/model.safetensors", dir + "/model.safetensors");
  auto p = LoadPolicy(dir);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("model."), std::string::npos) << p.status();
  // Missing lm_head for an untied model.
  auto tensors = ReadSafetensors(root + "/llama-tiny/model.safetensors");
  ASSERT_TRUE(tensors.ok());
  std::vector<std::pair<std::string, at::Tensor>> list;
  for (const auto& [k, v] : *tensors) {
    if (k != "lm_head.weight") list.emplace_back(k, v);
  }
  std::filesystem::remove(dir + "/model.safetensors");
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", list).ok());
  p = LoadPolicy(dir);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("lm_head.weight"), std::string::npos) << p.status();
}

}  // namespace
}  // namespace envtune
