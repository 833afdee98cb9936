// `envtune env replay|check|decode` command logic (deploy/env_cli.h), driven with streams:
// golden files round-trip byte for byte, decode cases, check verdicts, error records and exit
// codes.
#include "deploy/env_cli.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "envserver/pyvalue.h"
#include "gtest/gtest.h"
#include "tests/envserver/test_env.h"

namespace envtune {
namespace {

using namespace test_env;  // NOLINT(build/namespaces)

// A data dir the CLI accepts: the repo's data/ (holding bfcl/) or the shared BFCL data itself.
std::string DataDir() {
  if (Exists(SourceDir() + "/data/bfcl/long_context_constants.json")) return SourceDir() + "/data";
  return SharedDir() + "/bfcl/data";
}

struct CliRun {
  int code = 0;
  std::vector<std::string> lines;
  std::string err;
};

CliRun Invoke(int (*cmd)(const std::vector<std::string>&, const EnvCliOptions&, std::istream&, std::ostream&,
                      std::ostream&),
           const std::vector<std::string>& args, const std::string& input, EnvCliOptions options = {}) {
  if (options.data_dir.empty()) options.data_dir = DataDir();
  std::istringstream in(input);
  std::ostringstream out, err;
  CliRun r;
  r.code = cmd(args, options, in, out, err);
  r.err = err.str();
  std::string text = out.str();
  if (!text.empty()) {
    if (text.back() == '\n') text.pop_back();
    r.lines = absl::StrSplit(text, '\n');
  }
  return r;
}

PyValue Parse(const std::string& line) {
  absl::StatusOr<PyValue> v = PyValue::FromJson(line);
  EXPECT_TRUE(v.ok()) << line;
  return v.ok() ? *v : PyValue();
}

// The two result texts whose item order is a Python set's iteration order (SPEC: compare them
// order-insensitively).
std::string NormalizeSetOrder(std::string s) {
  for (const auto& [open, close] : std::vector<std::pair<std::string, char>>{{"Invalid fields for update: ", '"'},
                                                                             {"Must be one of {", '}'}}) {
    size_t p = s.find(open);
    if (p == std::string::npos) continue;
    size_t start = p + open.size(), end = s.find(close, start);
    if (end == std::string::npos) continue;
    std::vector<std::string> parts = absl::StrSplit(s.substr(start, end - start), ", ");
    std::sort(parts.begin(), parts.end());
    s = s.substr(0, start) + absl::StrJoin(parts, ", ") + s.substr(end);
  }
  return s;
}

class EnvCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Exists(DataDir() + "/bfcl/long_context_constants.json") && !Exists(DataDir() + "/long_context_constants.json")) {
      GTEST_SKIP() << "BFCL data not found at " << DataDir();
    }
  }
};

TEST_F(EnvCliTest, GoldenFilesRoundTripByteForByte) {
  const std::string golden_dir = SharedDir() + "/bfcl/golden";
  if (!Exists(golden_dir + "/gt_base.jsonl")) GTEST_SKIP() << "golden files not found at " << golden_dir;
  int lines = 0;
  for (const char* name : {"gt_base", "gt_miss_func", "gt_miss_param", "gt_long_context"}) {
    const std::string path = golden_dir + "/" + name + ".jsonl";
    CliRun r = Invoke(RunEnvReplay, {"replay", path}, "");
    ASSERT_EQ(r.code, 0) << r.err;
    std::ifstream in(path);
    std::vector<std::string> golden;
    for (std::string line; std::getline(in, line);) golden.push_back(line);
    ASSERT_EQ(r.lines.size(), golden.size()) << name;
    for (size_t i = 0; i < golden.size(); ++i) {
      if (r.lines[i] != golden[i]) {
        EXPECT_EQ(NormalizeSetOrder(r.lines[i]), NormalizeSetOrder(golden[i])) << name << " line " << i + 1;
      }
      ++lines;
    }
  }
  EXPECT_EQ(lines, 800);
}

TEST_F(EnvCliTest, ReplayArbitraryCallsFromStdin) {
  CliRun r = Invoke(RunEnvReplay, {"replay", "-"},
                 R"J({"id": "multi_turn_base_0", "turns": [{"calls": ["pwd()", "cd(folder='nowhere')", "cd()"]}, {"calls": []}]})J"
                 "\n");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 1u);
  PyValue v = Parse(r.lines[0]);
  const PyList& turns = v.dict().Find("turns")->items();
  ASSERT_EQ(turns.size(), 2u);
  const PyList& results = turns[0].dict().Find("results")->items();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].as_str(), R"J({"current_working_directory": "/workspace"})J");
  EXPECT_NE(results[1].as_str().find("\"error\""), std::string::npos);
  EXPECT_EQ(results[2].as_str(),
            "Error during execution: GorillaFileSystem.cd() missing 1 required positional argument: 'folder'");
  EXPECT_TRUE(turns[1].dict().Find("results")->items().empty());
  EXPECT_EQ(turns[1].dict().Find("turn")->as_int(), 1);
}

TEST_F(EnvCliTest, MalformedLinesGiveErrorRecordsAndExitOne) {
  const std::string input =
      "not json\n"
      "\n"
      "[1, 2]\n"
      R"J({"id": "no_such_task", "turns": []})J" "\n"
      R"J({"id": "multi_turn_base_0", "turns": [{"calls": [1]}]})J" "\n"
      R"J({"id": "multi_turn_base_0", "turns": [{"calls": ["pwd()"]}]})J" "\n";
  CliRun r = Invoke(RunEnvReplay, {"replay", "-"}, input);
  EXPECT_EQ(r.code, 1);
  ASSERT_EQ(r.lines.size(), 5u);
  const int expected_lines[] = {1, 3, 4, 5};
  for (int i = 0; i < 4; ++i) {
    PyValue rec = Parse(r.lines[i]);
    ASSERT_TRUE(rec.is_dict());
    EXPECT_EQ(rec.dict().Find("line")->as_int(), expected_lines[i]) << r.lines[i];
    EXPECT_TRUE(rec.dict().Find("error")->is_str());
  }
  EXPECT_NE(r.lines[2].find("unknown task id 'no_such_task'"), std::string::npos);
  EXPECT_NE(r.lines[4].find("\"id\": \"multi_turn_base_0\""), std::string::npos);  // kept going
  EXPECT_NE(r.err.find("line 1"), std::string::npos);

  CliRun c = Invoke(RunEnvCheck, {"check", "-"}, "{\"id\": 3}\n{oops\n");
  EXPECT_EQ(c.code, 1);
  ASSERT_EQ(c.lines.size(), 2u);
  EXPECT_EQ(Parse(c.lines[1]).dict().Find("line")->as_int(), 2);
  CliRun d = Invoke(RunEnvDecode, {"decode", "-"}, "{\"mode\": \"xml\", \"input\": \"\"}\n{\"input\": \"x\"}\n");
  EXPECT_EQ(d.code, 1);
  EXPECT_EQ(d.lines.size(), 2u);
}

TEST_F(EnvCliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Invoke(RunEnvReplay, {"replay"}, "").code, 2);
  EXPECT_EQ(Invoke(RunEnvCheck, {"check", "a", "b"}, "").code, 2);
  EXPECT_EQ(Invoke(RunEnvDecode, {"decode", "/nonexistent/file.jsonl"}, "").code, 2);
  EnvCliOptions bad_mode;
  bad_mode.mode = "xml";
  EXPECT_EQ(Invoke(RunEnvCheck, {"check", "-"}, "", bad_mode).code, 2);
  EnvCliOptions bad_dir;
  bad_dir.data_dir = "/nonexistent/data";
  CliRun r = Invoke(RunEnvReplay, {"replay", "-"}, "", bad_dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(r.err.empty());
}

TEST_F(EnvCliTest, DecodeCases) {
  const std::string input =
      R"J({"mode": "bfcl_prompting", "input": "[cd(folder='document'), mkdir(dir_name=\"temp\")]"})J"
      "\n"
      R"J({"mode": "bfcl_prompting", "input": "```\nf(1, a=+5, b=foo, c=1+2)\n```"})J"
      "\n"
      R"J({"mode": "bfcl_prompting", "input": "I cannot help with that."})J"
      "\n"
      R"J({"mode": "bfcl_prompting", "input": "[]"})J"
      "\n"
      R"J({"mode": "bfcl_fc", "input": "[{\"cd\": \"{\\\"folder\\\": \\\"x\\\", \\\"n\\\": 1}\"}]"})J"
      "\n"
      R"J({"mode": "envtuning", "input": "<think>ok</think><answer>done</answer>"})J"
      "\n"
      R"J({"mode": "envtuning", "input": "<think>ok</think><tool_call>[{\"name\": \"ls\", \"arguments\": {\"a\": true}}]</tool_call>"})J"
      "\n"
      R"J({"mode": "envtuning", "input": "no tags"})J"
      "\n";
  CliRun r = Invoke(RunEnvDecode, {"decode", "-"}, input);
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 8u);
  EXPECT_EQ(r.lines[0], R"J({"ok": true, "calls": ["cd(folder='document')", "mkdir(dir_name='temp')"], "no_call": false, "error": null})J");
  EXPECT_EQ(r.lines[1], R"J({"ok": true, "calls": ["f(a=-5, b='foo', c=3)"], "no_call": false, "error": null})J");
  PyValue prose = Parse(r.lines[2]);
  EXPECT_FALSE(prose.dict().Find("ok")->as_bool());
  EXPECT_TRUE(prose.dict().Find("error")->is_str());
  EXPECT_EQ(r.lines[3], R"J({"ok": true, "calls": [], "no_call": true, "error": null})J");
  EXPECT_EQ(r.lines[4], R"J({"ok": true, "calls": ["cd(folder='x',n=1)"], "no_call": false, "error": null})J");
  EXPECT_EQ(r.lines[5], R"J({"ok": true, "calls": [], "no_call": true, "error": null})J");
  EXPECT_EQ(r.lines[6], R"J({"ok": true, "calls": ["ls(a=True)"], "no_call": false, "error": null})J");
  EXPECT_FALSE(Parse(r.lines[7]).dict().Find("ok")->as_bool());
}

// `env decode --mode bfcl_fc` reads BFCL's structured function-calling output (a list of
// {name: JSON-arguments} objects, or one object) as BFCL's convert_to_function_call does; a
// line's "mode" overrides --mode; a bad --mode is a usage error.
TEST_F(EnvCliTest, DecodeModeFlagAndStructuredFcOutput) {
  EnvCliOptions fc;
  fc.mode = "bfcl_fc";
  const std::string input =
      R"J({"input": [{"cd": "{\"folder\": \"x\", \"n\": 1}"}, {"mv": {"source": "a", "destination": "b"}}]})J"
      "\n"
      R"J({"input": {"ls": "{\"a\": true}"}})J"
      "\n"
      R"J({"input": "[{\"pwd\": \"{}\"}]"})J"
      "\n"
      R"J({"input": []})J"
      "\n"
      R"J({"input": [3]})J"
      "\n"
      R"J({"mode": "bfcl_prompting", "input": "[pwd()]"})J"
      "\n"
      R"J({"mode": "bfcl_prompting", "input": [{"pwd": "{}"}]})J"
      "\n";
  CliRun r = Invoke(RunEnvDecode, {"decode", "-"}, input, fc);
  ASSERT_EQ(r.lines.size(), 7u) << r.err;
  EXPECT_EQ(r.lines[0], R"J({"ok": true, "calls": ["cd(folder='x',n=1)", "mv(source='a',destination='b')"], "no_call": false, "error": null})J");
  EXPECT_EQ(r.lines[1], R"J({"ok": true, "calls": ["ls(a=True)"], "no_call": false, "error": null})J");
  EXPECT_EQ(r.lines[2], R"J({"ok": true, "calls": ["pwd()"], "no_call": false, "error": null})J");
  EXPECT_EQ(r.lines[3], R"J({"ok": true, "calls": [], "no_call": true, "error": null})J");
  EXPECT_EQ(r.lines[4], R"J({"ok": false, "calls": [], "no_call": false, "error": "'int' object has no attribute 'items'"})J");
  EXPECT_EQ(r.lines[5], R"J({"ok": true, "calls": ["pwd()"], "no_call": false, "error": null})J");
  // Structured input is fc output only: a prompting line holding a list is a malformed line.
  EXPECT_NE(r.lines[6].find("\"error\": \"\\\"input\\\" must be a string\""), std::string::npos) << r.lines[6];
  EXPECT_EQ(r.code, 1);

  EnvCliOptions bad;
  bad.mode = "xml";
  EXPECT_EQ(Invoke(RunEnvDecode, {"decode", "-"}, "{\"input\": \"x\"}\n", bad).code, 2);
}

TEST_F(EnvCliTest, CheckVerdictsInEveryInputForm) {
  const std::string gt =
      R"J({"id": "multi_turn_base_1", "turns": [{"calls": ["ls(a=True)"]}, {"calls": ["cd(folder='workspace')", "mv(source='log.txt',destination='archive')"]}, {"calls": ["cd(folder='archive')", "grep(file_name='log.txt',pattern='Error')"]}, {"calls": ["tail(file_name='log.txt',lines=20)"]}]})J";
  const std::string steps =
      R"J({"id": "multi_turn_base_1", "turns": [{"steps": [["ls(a=True)"], []]}, {"steps": [["cd(folder='workspace')"], ["mv(source='log.txt',destination='archive')"]]}, {"steps": [["cd(folder='archive')", "grep(file_name='log.txt',pattern='Error')"]]}, {"steps": []}]})J";
  const std::string responses =
      R"J({"id": "multi_turn_base_1", "turns": [{"responses": ["[ls(a=True)]", "Done."]}, {"responses": ["[cd(folder='workspace'), mv(source='log.txt', destination='archive')]"]}, {"responses": ["[cd(folder='archive')]", "[grep(file_name='log.txt', pattern='Error')]"]}, {"responses": ["[tail(file_name='log.txt', lines=20)]"]}]})J";
  const std::string bfcl_result =
      R"J({"id": "multi_turn_base_1", "result": [["[ls(a=True)]"], ["[cd(folder='workspace'), mv(source='log.txt', destination='archive')]"], ["[cd(folder='archive'), grep(file_name='log.txt', pattern='Error')]"]]})J";
  const std::string not_a_list = R"J({"id": "multi_turn_base_1", "result": "Error during inference: timeout"})J";
  CliRun r = Invoke(RunEnvCheck, {"check", "-"}, gt + "\n" + steps + "\n" + responses + "\n" + bfcl_result + "\n" + not_a_list + "\n");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 5u);
  EXPECT_EQ(r.lines[0],
            R"J({"id": "multi_turn_base_1", "valid": true, "error_type": null, "error_message": null, "per_turn": [)J"
            R"J({"turn": 0, "checked": true, "state_ok": true, "response_ok": true, "score": 1}, )J"
            R"J({"turn": 1, "checked": true, "state_ok": true, "response_ok": true, "score": 1}, )J"
            R"J({"turn": 2, "checked": true, "state_ok": true, "response_ok": true, "score": 1}, )J"
            R"J({"turn": 3, "checked": true, "state_ok": true, "response_ok": true, "score": 1}], "reward": 1.0})J");
  PyValue s = Parse(r.lines[1]);
  EXPECT_EQ(s.dict().Find("error_type")->as_str(), "multi_turn:empty_turn_model_response");
  EXPECT_EQ(s.dict().Find("error_message")->as_str(), "Model response list is empty for turn 3");
  EXPECT_DOUBLE_EQ(s.dict().Find("reward")->as_float(), 0.75);
  PyValue resp = Parse(r.lines[2]);
  EXPECT_TRUE(resp.dict().Find("valid")->as_bool()) << r.lines[2];
  PyValue ft = Parse(r.lines[3]);
  EXPECT_EQ(ft.dict().Find("error_type")->as_str(), "multi_turn:force_terminated");
  EXPECT_EQ(ft.dict().Find("error_message")->as_str(),
            "Model was force-terminated during inference phase. The length of the model result turns (3) does not "
            "match the length of the ground truth turns (4).");
  PyValue ie = Parse(r.lines[4]);
  EXPECT_EQ(ie.dict().Find("error_type")->as_str(), "multi_turn:inference_error");
  EXPECT_TRUE(ie.dict().Find("per_turn")->items().empty());
}

TEST_F(EnvCliTest, CheckReportsFirstFailureDetails) {
  const std::string state =
      R"J({"id": "multi_turn_base_1", "turns": [{"calls": ["ls(a=True)"]}, {"calls": ["cd(folder='workspace')"]}, {"calls": []}, {"calls": []}]})J";
  CliRun r = Invoke(RunEnvCheck, {"check", "-"}, state + "\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.lines[0],
            R"J({"id": "multi_turn_base_1", "valid": false, "error_type": "multi_turn:instance_state_mismatch", )J"
            R"J("error_message": "Model instance for GorillaFileSystem does not match the state with ground truth instance.", )J"
            R"J("mismatch_class": "GorillaFileSystem", "mismatch_attributes": ["root"], "per_turn": [)J"
            R"J({"turn": 0, "checked": true, "state_ok": true, "response_ok": true, "score": 1}, )J"
            R"J({"turn": 1, "checked": true, "state_ok": false, "response_ok": false, "score": 0}, )J"
            R"J({"turn": 2, "checked": true, "state_ok": false, "response_ok": false, "score": 0}, )J"
            R"J({"turn": 3, "checked": true, "state_ok": false, "response_ok": false, "score": 0}], "reward": 0.25})J");
}

TEST_F(EnvCliTest, CheckDecodesWithTheChosenMode) {
  EnvCliOptions fc;
  fc.mode = "bfcl_fc";
  const std::string line =
      R"J({"id": "multi_turn_base_1", "result": [[[{"ls": "{\"a\": true}"}], "All done"], [[{"cd": "{\"folder\": \"workspace\"}"}, {"mv": "{\"source\": \"log.txt\", \"destination\": \"archive\"}"}]], [[{"cd": "{\"folder\": \"archive\"}"}, {"grep": "{\"file_name\": \"log.txt\", \"pattern\": \"Error\"}"}]], [[{"tail": "{\"file_name\": \"log.txt\", \"lines\": 20}"}]]]})J";
  CliRun r = Invoke(RunEnvCheck, {"check", "-"}, line + "\n", fc);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Parse(r.lines[0]).dict().Find("valid")->as_bool()) << r.lines[0];
  // The same raw replies read as prompting text do not decode: every turn is empty.
  CliRun p = Invoke(RunEnvCheck, {"check", "-"}, line + "\n");
  EXPECT_EQ(Parse(p.lines[0]).dict().Find("error_type")->as_str(), "multi_turn:empty_turn_model_response");
  // A line's own "mode" overrides the option.
  std::string with_mode = line;
  with_mode.insert(1, R"J("mode": "bfcl_fc", )J");
  CliRun m = Invoke(RunEnvCheck, {"check", "-"}, with_mode + "\n" + R"J({"id": "multi_turn_base_1", "mode": "xml", "result": []})J" "\n");
  EXPECT_EQ(m.code, 1);
  ASSERT_EQ(m.lines.size(), 2u);
  EXPECT_TRUE(Parse(m.lines[0]).dict().Find("valid")->as_bool()) << m.lines[0];
  EXPECT_EQ(Parse(m.lines[1]).dict().Find("line")->as_int(), 2);
}

}  // namespace
}  // namespace envtune

namespace envtune {
namespace {

// Hostile inputs of the reliability probe (../shared/reviews/reliability-probe.md §2): 100k-deep
// nesting inside a 200 KB reply, in every decode mode and through `env check`, and a 1M-deep JSON
// line, each a per-line error or a failed decode, never a stack overflow.
TEST_F(EnvCliTest, DeepNestingIsAnErrorNotACrash) {
  const size_t depth = 100000;
  const std::string lists = std::string(depth, '[') + std::string(depth, ']');
  const std::string call = "{\"name\": \"ls\", \"arguments\": {\"a\": " + lists + "}}";
  auto line = [](const std::string& mode, const std::string& input) {
    return "{\"mode\": \"" + mode + "\", \"input\": " + PyValue::Str(input).JsonDumps() + "}\n";
  };
  const std::string envtuning = "<think>x</think>\n<tool_call>\n" + call + "\n</tool_call>";
  CliRun d = Invoke(RunEnvDecode, {"decode", "-"},
                    line("envtuning", envtuning) + line("bfcl_fc", "<tool_call>\n" + call + "\n</tool_call>") +
                        line("bfcl_prompting", "[ls(a=" + lists + ")]") +
                        "{\"mode\": \"bfcl_fc\", \"input\": " + lists + "}\n" +
                        std::string(1000000, '[') + std::string(1000000, ']') + "\n");
  EXPECT_EQ(d.code, 1);  // the last two lines are not JSON the reader accepts
  ASSERT_EQ(d.lines.size(), 5u) << d.err;
  EXPECT_NE(d.lines[0].find("nested deeper than 1000 levels"), std::string::npos) << d.lines[0];
  EXPECT_NE(d.lines[1].find("\"ok\": false"), std::string::npos) << d.lines[1];
  EXPECT_NE(d.lines[2].find("too many nested parentheses"), std::string::npos) << d.lines[2];
  for (int i : {3, 4}) {
    EXPECT_NE(d.lines[i].find("nested deeper than 1000 levels"), std::string::npos) << d.lines[i];
  }
  // `env check` decodes the same reply in each of the task's four turns.
  PyList turns;
  for (int t = 0; t < 4; ++t) {
    PyDict turn;
    turn.Set("responses", PyValue::List({PyValue::Str(envtuning)}));
    turns.push_back(PyValue::Dict(std::move(turn)));
  }
  PyDict task;
  task.Set("id", PyValue::Str("multi_turn_base_0"));
  task.Set("mode", PyValue::Str("envtuning"));
  task.Set("turns", PyValue::List(std::move(turns)));
  CliRun c = Invoke(RunEnvCheck, {"check", "-"}, PyValue::Dict(std::move(task)).JsonDumps() + "\n");
  EXPECT_EQ(c.code, 0) << c.err;
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_NE(c.lines[0].find("\"valid\": false"), std::string::npos) << c.lines[0];
}

// Executed call arguments copy values ('*', '+', unpacking) within a budget: nested repetition
// ("[[0]*1000000]*1000000", 10^12 values) aborted `env replay` and the env server with
// bad_alloc; now the call fails with MemoryError, as a sandbox error result.
TEST_F(EnvCliTest, NestedRepetitionIsAMemoryErrorNotAnAbort) {
  for (const std::string arg : {"[[0]*1000000]*1000000", "[[[0]*1000]*1000]*1000",
                                "'a'*1000000*1000000", "[*[[0]*100000]*100]*1000",
                                "([0]*1000000+[0]*1000000)*1000"}) {
    CliRun r = Invoke(RunEnvReplay, {"replay", "-"},
                      "{\"id\": \"multi_turn_base_0\", \"turns\": [{\"calls\": [\"cd(folder=" + arg +
                          ")\"]}]}\n");
    ASSERT_EQ(r.code, 0) << arg << ": " << r.err;
    ASSERT_EQ(r.lines.size(), 1u);
    EXPECT_NE(r.lines[0].find("Error during execution: MemoryError"), std::string::npos)
        << arg << ": " << r.lines[0].substr(0, 300);
  }
  // Within the budget the values are built as before.
  CliRun ok = Invoke(RunEnvReplay, {"replay", "-"},
                     "{\"id\": \"multi_turn_base_0\", \"turns\": [{\"calls\": "
                     "[\"cd(folder='ab'*3)\"]}]}\n");
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.lines[0].find("ababab"), std::string::npos) << ok.lines[0].substr(0, 300);
}

// A directory opens as an empty stream on Linux: it was a silent success (rc 0, no output).
TEST_F(EnvCliTest, ADirectoryIsAUsageError) {
  for (auto* cmd : {RunEnvDecode, RunEnvCheck, RunEnvReplay}) {
    CliRun r = Invoke(cmd, {"x", SourceDir()}, "");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("is a directory"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace envtune
