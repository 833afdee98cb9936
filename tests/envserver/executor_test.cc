// Executor (checker.md A.5): dispatch, positional/keyword binding, blocklist, unknown names,
// syntax errors, the rewrite quirk inside string literals, class precedence, Sandbox copies.
#include "envserver/executor.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

using ::testing::HasSubstr;

PyValue FsConfig() {
  absl::StatusOr<PyValue> v = PyValue::FromJson(
      R"({"GorillaFileSystem": {"root": {"alex": {"type": "directory", "contents": {"document": {"type": "directory", "contents": {"a.txt": {"type": "file", "content": "hello"}}}}}}},
          "TwitterAPI": {"username": "u", "password": "p", "authenticated": true, "tweets": {}, "tweet_counter": 0}})");
  return *v;
}

absl::StatusOr<Sandbox> MakeSandbox() {
  return Sandbox::Create("multi_turn_base_0", {"GorillaFileSystem", "TwitterAPI", "MathAPI"}, FsConfig(),
                         false, nullptr);
}

TEST(Executor, ResultsFollowBfcl) {
  absl::StatusOr<Sandbox> sb = MakeSandbox();
  ASSERT_TRUE(sb.ok()) << sb.status();
  if (!sb->unavailable_classes().empty()) GTEST_SKIP() << "classes not registered yet";
  struct Case {
    const char* call;
    const char* result;
  };
  const Case cases[] = {
      {"cd(folder='document')", "{\"current_working_directory\": \"document\"}"},
      {"cd('..')", "{}"},  // BFCL: going up returns an empty dict
      {"cd(bogus=1)", "Error during execution: GorillaFileSystem.cd() got an unexpected keyword argument 'bogus'"},
      {"cd()", "Error during execution: GorillaFileSystem.cd() missing 1 required positional argument: 'folder'"},
      {"foo(a=1)", "Error during execution: name 'foo' is not defined"},
      {"os.system('ls')", "Error during execution: name 'os' is not defined"},
      {"kill(pid=1)", "Error during execution: Function call kill is not allowed."},
      {"os.remove('x')", "Error during execution: Function call remove is not allowed."},
      {"cd(folder='x'", "Error during execution: '(' was never closed (<string>, line 1)"},
      {"cd(folder='a', folder='b')", "Error during execution: keyword argument repeated: folder (<string>, line 1)"},
      {"add(a=1, b=2)", "{\"result\": 3}"},
      {"add(1, 2)", "{\"result\": 3}"},
      {"add(a=1+1, b=2*3)", "{\"result\": 8}"},
      {"pwd()", "{\"current_working_directory\": \"/alex\"}"},
      {"'abc'(1)", "Error during execution: 'str' object is not callable"},
      {"(1).foo(x=1)", "Error during execution: 'int' object has no attribute 'foo'"},
  };
  for (const Case& c : cases) {
    CallRecord r = sb->ExecuteCall(c.call);
    EXPECT_EQ(r.result, c.result) << c.call;
  }
  EXPECT_EQ(sb->ExecuteCall("add(a=1, b=2)").served_by, "MathAPI");
  EXPECT_EQ(sb->ExecuteCall("pwd()").served_by, "GorillaFileSystem");
  EXPECT_TRUE(sb->ExecuteCall("foo()").raised);
}

TEST(Executor, RewriteQuirkEditsStringLiterals) {
  absl::flat_hash_map<std::string, std::string> map = {{"ls", "X_instance"}, {"post_tweet", "T_instance"}};
  EXPECT_EQ(RewriteCallString("post_tweet(content='run ls (now) and sort (by date)')", map),
            "T_instance.post_tweet(content='run X_instance.ls(now) and sort(by date)')");
  EXPECT_EQ(RewriteCallString("foo  (1)", map), "foo(1)");
  EXPECT_EQ(RewriteCallString("a1ls(x)", map), "a1ls(x)");
  EXPECT_EQ(RewriteCallString("9ls(x)", map), "9ls(x)");
  EXPECT_EQ(RewriteCallString("x.ls(1)", map), "x.X_instance.ls(1)");
  EXPECT_EQ(RewriteCallString("caf\xC3\xA9ls(1)", map), "caf\xC3\xA9ls(1)");
}

TEST(Executor, RewriteQuirkReachesState) {
  absl::StatusOr<Sandbox> sb = MakeSandbox();
  ASSERT_TRUE(sb.ok());
  if (!sb->unavailable_classes().empty()) GTEST_SKIP() << "classes not registered yet";
  CallRecord r = sb->ExecuteCall("post_tweet(content='try ls (x)')");
  EXPECT_FALSE(r.raised) << r.result;
  std::string state = sb->PublicStates().JsonDumps();
  EXPECT_THAT(state, HasSubstr("try envtune_multi_turn_base_0_GorillaFileSystem_instance.ls(x)"));
}

TEST(Executor, LaterClassWinsAndCopiesAreIndependent) {
  absl::StatusOr<Sandbox> sb = MakeSandbox();
  ASSERT_TRUE(sb.ok());
  if (!sb->unavailable_classes().empty()) GTEST_SKIP() << "classes not registered yet";
  Sandbox copy = *sb;
  EXPECT_EQ(sb->ExecuteCall("cd(folder='document')").result, "{\"current_working_directory\": \"document\"}");
  EXPECT_EQ(copy.ExecuteCall("pwd()").result, "{\"current_working_directory\": \"/alex\"}");
  EXPECT_EQ(sb->ExecuteCall("pwd()").result, "{\"current_working_directory\": \"/alex/document\"}");
  for (const auto& [method, cls] : sb->method_classes()) {
    EXPECT_FALSE(method.empty());
    EXPECT_FALSE(cls.empty());
  }
}

TEST(Executor, UnknownClassIsAnError) {
  EXPECT_FALSE(Sandbox::Create("t_0", {"NoSuchAPI"}, PyValue::Dict(), false, nullptr).ok());
  EXPECT_FALSE(Sandbox::Create("t_0", {"MathAPI", "MathAPI"}, PyValue::Dict(), false, nullptr).ok());
}

TEST(Executor, HostileCallStringsDoNotCrash) {
  absl::StatusOr<Sandbox> sb = MakeSandbox();
  ASSERT_TRUE(sb.ok());
  for (std::string s : {std::string(300, '(') , std::string("cd(folder=") + std::string(100000, '-') + "1)",
                        std::string("add(a=9**9**9, b=1)"), std::string("add(a='x'*10**9, b=1)"),
                        std::string("cd(**{'folder': 'document'})"), std::string("cd(*['document'])"),
                        std::string("cd(folder=cd(folder='document'))"), std::string("\xff\xfe"),
                        std::string("__import__('os').system('id')"), std::string("")}) {
    CallRecord r = sb->ExecuteCall(s);
    EXPECT_FALSE(r.result.empty()) << s.substr(0, 40);
  }
  EXPECT_EQ(sb->ExecuteCall("__import__('os').system('id')").result,
            "Error during execution: name '__import__' is not defined");
}

}  // namespace
}  // namespace envtune
