#include "learner/sft.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "envserver/episode.h"
#include "envserver/reply_format.h"
#include "episodes/conversation.h"
#include "episodes/evaluation.h"
#include "episodes/task_selection.h"
#include "learner/trainer.h"
#include "model/device.h"
#include "model/qwen2.h"
#include "model/score.h"
#include "model/text/chat_template.h"
#include "model/text/text_tools.h"

namespace envtune {
namespace {

using Json = nlohmann::ordered_json;

}  // namespace

void ReadSftOptions(ConfigReader& reader, SftOptions* o) {
  o->model = reader.Get<std::string>("sft.model", o->model);
  ReadTinyQwen2Spec(reader, "sft", &o->tiny);
  o->tokenizer = reader.Get<std::string>("sft.tokenizer", o->tokenizer);
  absl::StatusOr<v1::OutputFormat> format = ParseOutputFormat(
      reader.Get<std::string>("sft.format", std::string(OutputFormatName(o->format))));
  if (!format.ok()) {
    reader.AddError(absl::StrCat("sft.format: ", format.status().message()));
  } else if (*format == v1::OUTPUT_FORMAT_HERMES) {
    reader.AddError(
        "sft.format: hermes is not supported by the warm start (envtuning or "
        "bfcl_prompting)");
  } else {
    o->format = *format;
  }
  o->epochs = reader.Get<int>("sft.epochs", o->epochs);
  o->lr = reader.Get<double>("sft.lr", o->lr);
  o->weight_decay = reader.Get<double>("sft.weight_decay", o->weight_decay);
  o->max_grad_norm = reader.Get<double>("sft.max_grad_norm", o->max_grad_norm);
  o->batch_tokens = reader.Get<int64_t>("sft.batch_tokens", o->batch_tokens);
  o->max_length = reader.Get<int64_t>("sft.max_length", o->max_length);
  o->max_replies = reader.Get<int>("sft.max_replies", o->max_replies);
  o->output_dir = reader.Get<std::string>("sft.output_dir", o->output_dir);
  o->seed = reader.Get<uint64_t>("sft.seed", o->seed);
  o->data_dir = reader.Get<std::string>("sft.data_dir", o->data_dir);
  o->subset = reader.Get<std::string>("sft.subset", o->subset);
  o->categories = reader.Get<std::vector<std::string>>("sft.categories", o->categories);
  o->limit = reader.Get<int>("sft.limit", o->limit);
  o->device = reader.Get<std::string>("sft.device", o->device);
  o->dtype = reader.Get<std::string>("sft.dtype", o->dtype);
  o->max_steps = reader.Get<int64_t>("sft.max_steps", o->max_steps);
  o->progress_file = reader.Get<std::string>("sft.progress_file", o->progress_file);
  if (o->epochs < 0) reader.AddError("sft.epochs: must be >= 0");
  if (!(o->lr >= 0)) reader.AddError("sft.lr: must be >= 0");
  if (o->batch_tokens < 1) reader.AddError("sft.batch_tokens: must be >= 1");
  if (o->max_length < 2) reader.AddError("sft.max_length: must be >= 2");
  if (o->max_replies < 0) reader.AddError("sft.max_replies: must be >= 0 (0 = all)");
  if (o->output_dir.empty()) reader.AddError("sft.output_dir: required");
  if (o->dtype != "float32" && o->dtype != "bfloat16" && o->dtype != "fp32" && o->dtype != "bf16") {
    reader.AddError(absl::StrCat("sft.dtype: '", o->dtype, "' is not float32 or bfloat16"));
  }
}

absl::StatusOr<SftExample> RenderSftExample(const Tokenizer& tokenizer, const Json& messages,
                                            int64_t max_length, int max_replies) {
  if (!messages.is_array() || messages.empty()) {
    return absl::InvalidArgumentError("sft: a conversation needs messages");
  }
  // Through episodes/conversation.h, as rollouts tokenize: the context up to each assistant
  // reply's generation prompt is mask 0, the reply + <|im_end|> is trained, the "\n" after it
  // is context. Trailing messages after the last trained reply are left out.
  std::optional<Conversation> conversation;
  Json pending = Json::array();  // messages since the last reply
  int replies = 0;
  for (size_t i = 0; i < messages.size() && (max_replies <= 0 || replies < max_replies); ++i) {
    const Json& m = messages[i];
    if (m.value("role", "") != "assistant") {
      pending.push_back(m);
      continue;
    }
    if (!conversation) {
      absl::StatusOr<Conversation> opened = Conversation::Open(&tokenizer, pending, Json());
      if (!opened.ok()) return opened.status();
      conversation = std::move(*opened);
    } else {
      absl::StatusOr<std::vector<TokenId>> next = conversation->NextMessagesTokens(pending);
      if (!next.ok()) return next.status();
      conversation->AppendMessages(pending, *next);
    }
    pending = Json::array();
    if (absl::Status s = conversation->AppendReplyText(m.value("content", "")); !s.ok()) return s;
    ++replies;
  }
  SftExample ex;
  if (conversation) {
    ex.ids.assign(conversation->ids().begin(), conversation->ids().end());
    ex.mask.assign(conversation->mask().begin(), conversation->mask().end());
  }
  if (static_cast<int64_t>(ex.ids.size()) > max_length) {
    ex.ids.resize(max_length);
    ex.mask.resize(max_length);
  }
  return ex;
}

absl::StatusOr<std::vector<SftExample>> BuildSftExamples(const TaskCatalog& catalog,
                                                         const Tokenizer& tokenizer,
                                                         const std::vector<std::string>& task_ids,
                                                         v1::OutputFormat format,
                                                         int64_t max_length, int max_replies) {
  EpisodeEngine engine(&catalog, EpisodeEngineOptions{});
  std::unique_ptr<EvalEnv> env = InProcessEvalEnv(&engine);
  std::unique_ptr<EvalPolicy> gt = GroundTruthEvalPolicy(&catalog);
  EvalOptions eo;
  eo.format = format;
  eo.batch_size = 64;
  absl::StatusOr<std::vector<TaskEvaluation>> runs = EvaluateTasks(*gt, *env, catalog, task_ids, eo);
  if (!runs.ok()) return runs.status();
  std::vector<SftExample> out;
  for (const TaskEvaluation& r : *runs) {
    if (!r.verdict.valid) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sft: the ground-truth episode of ", r.task_id, " is not valid (", r.verdict.error_type,
          ": ", r.verdict.error_message, r.error.empty() ? "" : " / " + r.error, ")"));
    }
    absl::StatusOr<SftExample> ex = RenderSftExample(tokenizer, r.messages, max_length, max_replies);
    if (!ex.ok()) {
      return absl::Status(ex.status().code(), absl::StrCat(r.task_id, ": ", ex.status().message()));
    }
    ex->task_id = r.task_id;
    out.push_back(*std::move(ex));
  }
  return out;
}

absl::StatusOr<SftResult> RunSft(const SftOptions& o, std::ostream* log) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(o.tokenizer);
  if (!tok.ok()) return tok.status();
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(o.data_dir + "/bfcl");
  if (!catalog.ok()) return catalog.status();
  TaskSelection sel;
  sel.categories = o.categories;
  sel.subset = o.subset;
  sel.limit = o.limit;
  absl::StatusOr<std::vector<std::string>> ids = SelectEvalTasks(*catalog, o.data_dir, sel);
  if (!ids.ok()) return ids.status();
  if (ids->empty()) return absl::InvalidArgumentError("sft: no task matches the selection");
  absl::StatusOr<std::vector<SftExample>> examples =
      BuildSftExamples(*catalog, **tok, *ids, o.format, o.max_length, o.max_replies);
  if (!examples.ok()) return examples.status();

  // A conversation cut before its first reply teaches nothing: drop it.
  const size_t before = examples->size();
  examples->erase(std::remove_if(examples->begin(), examples->end(),
                                 [](const SftExample& e) {
                                   return std::find(e.mask.begin(), e.mask.end(), uint8_t{1}) ==
                                          e.mask.end();
                                 }),
                  examples->end());
  if (examples->empty()) {
    return absl::InvalidArgumentError(
        "sft: no conversation has an assistant reply within max_length tokens");
  }
  if (log && examples->size() < before) {
    *log << "sft: dropped " << before - examples->size()
         << " conversations with no reply within max_length\n";
  }
  SftResult result;
  result.examples = static_cast<int>(examples->size());
  for (const SftExample& e : *examples) {
    result.trained_tokens += std::count(e.mask.begin(), e.mask.end(), uint8_t{1});
  }
  if (log) {
    *log << "sft: " << result.examples << " conversations, " << result.trained_tokens
         << " assistant tokens per epoch\n";
  }
  try {
    torch::manual_seed(o.seed);
    const std::string dtype_name = (o.dtype == "bf16" || o.dtype == "bfloat16") ? "bfloat16" : "float32";
    absl::StatusOr<c10::ScalarType> dtype = DtypeFromName(dtype_name);
    if (!dtype.ok()) return dtype.status();
    absl::StatusOr<c10::Device> resolved = ResolveDevice(o.device);
    if (!resolved.ok()) return resolved.status();
    const c10::Device device = *resolved;
    Policy policy{nullptr};
    if (o.model.empty()) {
      absl::StatusOr<ModelConfig> config = TinyQwen2ConfigFor(o.tiny, **tok);
      if (!config.ok()) return config.status();
      policy = Policy(PolicyOptions(*config).dtype(*dtype).device(device));
      policy->InitRandom(o.seed);
    } else {
      LoadPolicyOptions load;
      load.dtype = *dtype;
      load.device = device;
      absl::StatusOr<Policy> p = LoadPolicy(o.model, load);
      if (!p.ok()) return p.status();
      policy = *p;
    }
    // The GRPO trainer with the NLL objective: the same micro-batching, fp32 masters for bf16
    // (learner/optimizer.h) and clipping as RL.
    TrainerOptions trainer_options;
    trainer_options.objective = Objective::kNll;
    trainer_options.lr = o.lr;
    trainer_options.weight_decay = o.weight_decay;
    trainer_options.max_grad_norm = o.max_grad_norm;
    trainer_options.micro_batch_tokens = o.batch_tokens;
    trainer_options.share_prefix = true;
    trainer_options.compute_entropy = false;
    trainer_options.grpo.kl_coef = 0;
    absl::StatusOr<std::unique_ptr<Trainer>> trainer =
        Trainer::Create(policy.ptr(), nullptr, trainer_options);
    if (!trainer.ok()) return trainer.status();
    std::mt19937_64 rng(o.seed);
    std::vector<size_t> order(examples->size());
    bool stop = false;
    std::ofstream progress;
    if (!o.progress_file.empty()) {
      progress.open(o.progress_file, std::ios::trunc);
      if (!progress) {
        return absl::InvalidArgumentError(
            absl::StrCat("sft.progress_file: cannot write ", o.progress_file));
      }
    }
    const auto started = std::chrono::steady_clock::now();
    int64_t planned = 0;  // steps in all; every epoch packs the same sequences into as many batches
    for (int epoch = 0; epoch < o.epochs && !stop; ++epoch) {
      std::iota(order.begin(), order.end(), size_t{0});
      std::shuffle(order.begin(), order.end(), rng);
      // Conversations with the same system prompt (the same API classes) next to each other, so
      // a batch scores their common prefix once; then the batches in shuffled order.
      auto ids = [&](size_t i) -> const std::vector<int64_t>& { return (*examples)[i].ids; };
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return ids(a) < ids(b); });
      std::vector<std::vector<size_t>> batches = PackSequences(order, ids, o.batch_tokens, true);
      std::shuffle(batches.begin(), batches.end(), rng);
      if (planned == 0) {
        planned = static_cast<int64_t>(batches.size()) * o.epochs;
        if (o.max_steps > 0) planned = std::min(planned, o.max_steps);
      }
      double loss_sum = 0;
      int counted = 0;
      for (const std::vector<size_t>& b : batches) {
        TrainBatch batch;
        batch.version = 1;  // no item was sampled by the policy (no behaviour log-probs)
        for (size_t idx : b) {
          const SftExample& e = (*examples)[idx];
          TrainItem item;
          item.trajectory.set_episode_id(absl::StrCat(idx));
          item.trajectory.mutable_token_ids()->Add(e.ids.begin(), e.ids.end());
          item.trajectory.set_loss_mask(std::string(e.mask.begin(), e.mask.end()));
          batch.loss_tokens += static_cast<double>(std::count(e.mask.begin(), e.mask.end(), 1));
          batch.items.push_back(std::move(item));
        }
        absl::StatusOr<StepMetrics> m = (*trainer)->Step(batch);
        if (!m.ok()) return m.status();
        const double l = m->loss;
        if (result.steps == 0) result.first_loss = l;
        result.last_loss = l;
        loss_sum += l;
        ++counted;
        ++result.steps;
        if (log) {
          *log << absl::StrFormat("sft: epoch %d step %d loss %.5f (%d sequences)\n", epoch + 1,
                                  result.steps, l, static_cast<int>(b.size()));
        }
        if (progress.is_open()) {
          const double elapsed = std::chrono::duration<double>(
                                     std::chrono::steady_clock::now() - started).count();
          nlohmann::json line;  // a non-finite loss is written as null
          line["step"] = result.steps;
          line["steps"] = planned;
          line["epoch"] = epoch + 1;
          line["loss"] = l;
          line["elapsed_s"] = elapsed;
          progress << line.dump() << "\n"
                   << std::flush;
        }
        if (o.max_steps > 0 && result.steps >= o.max_steps) {
          stop = true;
          break;
        }
      }
      result.epoch_loss.push_back(counted > 0 ? loss_sum / counted : 0.0);
    }
    policy->eval();
    if (absl::Status s = SavePolicy(*policy, o.output_dir); !s.ok()) return s;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("sft: LibTorch: ", e.what()));
  }
  if (log) *log << "sft: wrote " << o.output_dir << "\n";
  return result;
}

}  // namespace envtune
