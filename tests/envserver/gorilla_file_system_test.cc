// Unit tests of the GorillaFileSystem sandbox against ../shared/bfcl/spec/gorilla_file_system.md:
// every function's success and error branches, Python string semantics, mv/cp aliasing, Python
// type misuse, long-context padding, hostile-input limits and the METHOD.md §5.1 augmentation
// hints (each condition on and off; state never changes).
#include "envserver/apis/gorilla_file_system.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "envserver/apis/apis.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/envserver/api_test_util.h"

namespace envtune {
namespace {

using namespace api_test;  // NOLINT(build/namespaces)
using ::testing::HasSubstr;
using ::testing::StartsWith;

PyValue File(const std::string& content) {
  return PyValue::Dict({{S("type"), S("file")}, {S("content"), S(content)}});
}
PyValue Dir(PyDict contents) {
  return PyValue::Dict({{S("type"), S("directory")}, {S("contents"), PyValue::Dict(contents)}});
}

// workspace/{notes.txt, .hidden, document/{report.txt, draft.txt, sub/{deep.txt}}, archive/{}}
PyValue Scenario() {
  PyDict sub{{S("deep.txt"), File("deep")}};
  PyDict document{{S("report.txt"), File("b line\na line\r\nc line\n")},
                  {S("draft.txt"), File("b line\nX line\nc line\nextra")},
                  {S("sub"), Dir(sub)}};
  PyDict workspace{{S("notes.txt"), File("hello world\n")},
                   {S(".hidden"), File("secret")},
                   {S("document"), Dir(document)},
                   {S("archive"), Dir({})}};
  return PyValue::Dict({{S("root"), PyValue::Dict({{S("workspace"), Dir(workspace)}})}});
}

class GfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_.set_context(&ctx_);
    fs_.LoadScenario(Scenario(), false);
  }
  std::string Call(const std::string& method, std::vector<PyValue> positional,
                   std::vector<std::pair<std::string, PyValue>> keywords = {}) {
    PyArgs args;
    args.positional = std::move(positional);
    args.keywords = std::move(keywords);
    return fs_.Invoke(method, args).ResultString();
  }
  SandboxContext ctx_;
  GorillaFileSystem fs_;
};

TEST_F(GfsTest, FactoryAndMethods) {
  std::unique_ptr<ToolApi> api = NewGorillaFileSystem();
  EXPECT_EQ(api->ClassName(), "GorillaFileSystem");
  EXPECT_EQ(api->MethodNames().size(), 18u);
  absl::StatusOr<std::unique_ptr<ToolApi>> created = CreateToolApi("GorillaFileSystem");
  ASSERT_TRUE(created.ok());
}

TEST_F(GfsTest, PwdLsCd) {
  EXPECT_EQ(Call("pwd", {}), "{\"current_working_directory\": \"/workspace\"}");
  EXPECT_EQ(Call("ls", {}),
            "{\"current_directory_content\": [\"notes.txt\", \"document\", \"archive\"]}");
  EXPECT_EQ(Call("ls", {}, {{"a", PyValue::Bool(true)}}),
            "{\"current_directory_content\": [\"notes.txt\", \".hidden\", \"document\", "
            "\"archive\"]}");
  EXPECT_EQ(Call("cd", {S("..")}),
            "{\"error\": \"Current directory is already the root. Cannot go back.\"}");
  EXPECT_EQ(Call("cd", {S("document/")}), "{\"current_working_directory\": \"document\"}");
  EXPECT_EQ(Call("pwd", {}), "{\"current_working_directory\": \"/workspace/document\"}");
  EXPECT_EQ(Call("cd", {S("sub/deep")}),
            "{\"error\": \"cd: sub/deep: Unsupported path. Only one folder level at a time is "
            "supported.\"}");
  EXPECT_EQ(Call("cd", {S("/document")}),
            "{\"error\": \"cd: /document: Unsupported path. Only one folder level at a time is "
            "supported.\"}");
  EXPECT_EQ(Call("cd", {S("nope")}), "{\"error\": \"cd: 'nope': No such file or directory\"}");
  EXPECT_EQ(Call("cd", {S("report.txt")}),
            "{\"error\": \"cd: 'report.txt': No such file or directory\"}");
  EXPECT_EQ(Call("cd", {S(".")}), "{\"current_working_directory\": \"document\"}");
  EXPECT_EQ(Call("cd", {S("..")}), "{}");
  EXPECT_EQ(Call("cd", {S("///")}), "{\"current_working_directory\": \"workspace\"}");
  EXPECT_EQ(Call("cd", {I(5)}), "Error during execution: 'int' object has no attribute 'rstrip'");
  EXPECT_EQ(Call("cd", {}, {{"path", S("x")}}),
            "Error during execution: GorillaFileSystem.cd() got an unexpected keyword argument "
            "'path'");
}

TEST_F(GfsTest, DefaultRootPwd) {
  GorillaFileSystem fs;
  fs.LoadScenario(PyValue::Dict(), false);
  PyArgs none;
  EXPECT_EQ(fs.Invoke("pwd", none).ResultString(), "{\"current_working_directory\": \"//\"}");
}

TEST_F(GfsTest, MkdirTouch) {
  EXPECT_EQ(Call("mkdir", {S("a/b")}),
            "{\"error\": \"mkdir: cannot create directory 'a/b': Invalid character\"}");
  EXPECT_EQ(Call("mkdir", {S("archive")}),
            "{\"error\": \"mkdir: cannot create directory 'archive': File exists\"}");
  EXPECT_EQ(Call("mkdir", {S("new")}), "None");
  EXPECT_EQ(Call("mkdir", {S("")}), "None");
  EXPECT_EQ(Call("touch", {S("x?")}),
            "{\"error\": \"touch: cannot touch 'x?': Invalid character\"}");
  EXPECT_EQ(Call("touch", {S("notes.txt")}),
            "{\"error\": \"touch: cannot touch 'notes.txt': File exists\"}");
  EXPECT_EQ(Call("touch", {S("t.txt")}), "None");
  EXPECT_EQ(Call("ls", {}),
            "{\"current_directory_content\": [\"notes.txt\", \"document\", \"archive\", \"new\", "
            "\"\", \"t.txt\"]}");
  EXPECT_EQ(Call("mkdir", {I(5)}),
            "Error during execution: argument of type 'int' is not iterable");
  EXPECT_EQ(Call("touch", {PyValue::List({S("a")})}),
            "Error during execution: unhashable type: 'list'");
}

TEST_F(GfsTest, EchoCat) {
  EXPECT_EQ(Call("echo", {S("hi \"x\"")}), "{\"terminal_output\": \"hi \\\"x\\\"\"}");
  EXPECT_EQ(Call("echo", {S("hi"), S("")}), "{\"terminal_output\": \"hi\"}");
  EXPECT_EQ(Call("echo", {S("hi"), S("a>b")}),
            "{\"error\": \"echo: cannot write to 'a>b': Invalid character\"}");
  EXPECT_EQ(Call("echo", {S("hi"), S("missing.txt")}),
            "{\"error\": \"echo: cannot write to 'missing.txt': No such file\"}");
  EXPECT_EQ(Call("echo", {S("hi"), S("document")}),
            "Error during execution: 'Directory' object has no attribute '_write'");
  EXPECT_EQ(Call("echo", {S("new text"), S("notes.txt")}), "None");
  EXPECT_EQ(Call("cat", {S("notes.txt")}), "{\"file_content\": \"new text\"}");
  EXPECT_EQ(Call("cat", {S("document")}), "{\"error\": \"cat: 'document': Is a directory\"}");
  EXPECT_EQ(Call("cat", {S("zz")}), "{\"error\": \"cat: 'zz': No such file or directory\"}");
  EXPECT_EQ(Call("cat", {S("a:b")}), "{\"error\": \"cat: 'a:b': Invalid character\"}");
  EXPECT_EQ(Call("echo", {S("caf\xc3\xa9"), S("notes.txt")}), "None");
  EXPECT_EQ(Call("cat", {S("notes.txt")}), "{\"file_content\": \"caf\\u00e9\"}");
  // Non-str content is stored as is; later string operations fail like Python.
  EXPECT_EQ(Call("echo", {I(42), S("notes.txt")}), "None");
  EXPECT_EQ(Call("cat", {S("notes.txt")}), "{\"file_content\": 42}");
  EXPECT_EQ(Call("wc", {S("notes.txt")}),
            "Error during execution: 'int' object has no attribute 'splitlines'");
  EXPECT_EQ(Call("du", {}), "Error during execution: 'int' object has no attribute 'encode'");
}

TEST_F(GfsTest, Find) {
  EXPECT_EQ(Call("find", {}),
            "{\"matches\": [\"./notes.txt\", \"./.hidden\", \"./document\", "
            "\"./document/report.txt\", \"./document/draft.txt\", \"./document/sub\", "
            "\"./document/sub/deep.txt\", \"./archive\"]}");
  EXPECT_EQ(Call("find", {S("document/"), S("r")}),
            "{\"matches\": [\"document/report.txt\", \"document/draft.txt\"]}");
  EXPECT_EQ(Call("find", {S("/"), S("deep")}), "{\"matches\": [\"/document/sub/deep.txt\"]}");
  EXPECT_EQ(Call("find", {S("document/sub"), S("")}),
            "{\"matches\": [\"document/sub/deep.txt\"]}");
  EXPECT_EQ(Call("find", {S("nope")}),
            "{\"error\": \"find: 'nope': No such file or directory\"}");
  EXPECT_EQ(Call("find", {S("/workspace")}),
            "{\"error\": \"find: '/workspace': No such file or directory\"}");
  EXPECT_EQ(Call("find", {PyValue()}),
            "Error during execution: 'NoneType' object has no attribute 'rstrip'");
  EXPECT_EQ(Call("find", {S("."), I(1)}),
            "Error during execution: 'in <string>' requires string as left operand, not int");
}

TEST_F(GfsTest, WcSortGrepTailDiff) {
  Call("cd", {S("document")});
  EXPECT_EQ(Call("wc", {S("report.txt")}), "{\"count\": 3, \"type\": \"lines\"}");
  EXPECT_EQ(Call("wc", {S("report.txt"), S("w")}), "{\"count\": 6, \"type\": \"words\"}");
  EXPECT_EQ(Call("wc", {S("report.txt"), S("c")}), "{\"count\": 22, \"type\": \"characters\"}");
  EXPECT_EQ(Call("wc", {S("report.txt"), S("x")}), "{\"error\": \"wc: invalid mode 'x'\"}");
  EXPECT_EQ(Call("wc", {S("sub")}), "{\"error\": \"wc: sub: No such file or directory\"}");
  EXPECT_EQ(Call("sort", {S("report.txt")}),
            "{\"sorted_content\": \"a line\\nb line\\nc line\"}");
  EXPECT_EQ(Call("sort", {S("zz")}), "{\"error\": \"sort: zz: No such file or directory\"}");
  EXPECT_EQ(Call("grep", {S("draft.txt"), S("line")}),
            "{\"matching_lines\": [\"b line\", \"X line\", \"c line\"]}");
  EXPECT_EQ(Call("grep", {S("sub"), S("x")}),
            "{\"error\": \"grep: sub: No such file or directory\"}");
  EXPECT_EQ(Call("tail", {S("draft.txt"), I(2)}), "{\"last_lines\": \"c line\\nextra\"}");
  EXPECT_EQ(Call("tail", {S("draft.txt"), I(0)}),
            "{\"last_lines\": \"b line\\nX line\\nc line\\nextra\"}");
  EXPECT_EQ(Call("tail", {S("draft.txt"), I(-3)}), "{\"last_lines\": \"extra\"}");
  EXPECT_EQ(Call("tail", {S("draft.txt"), PyValue::Float(9.5)}),
            "{\"last_lines\": \"b line\\nX line\\nc line\\nextra\"}");
  EXPECT_EQ(Call("tail", {S("draft.txt"), PyValue::Float(1.5)}),
            "Error during execution: slice indices must be integers or None or have an "
            "__index__ method");
  EXPECT_EQ(Call("tail", {S("draft.txt"), S("2")}),
            "Error during execution: '>' not supported between instances of 'str' and 'int'");
  EXPECT_EQ(Call("tail", {S("zz")}), "{\"error\": \"tail: zz: No such file or directory\"}");
  EXPECT_EQ(Call("diff", {S("report.txt"), S("draft.txt")}),
            "{\"diff_lines\": \"- a line\\n+ X line\"}");
  EXPECT_EQ(Call("diff", {S("report.txt"), S("sub")}),
            "{\"error\": \"diff: report.txt or sub: No such file or directory\"}");
}

TEST_F(GfsTest, SplitLinesSemantics) {
  Call("touch", {S("s.txt")});
  Call("echo", {S("l1\nl2\r\nl3\x0bl4\n\n"), S("s.txt")});
  EXPECT_EQ(Call("wc", {S("s.txt")}), "{\"count\": 5, \"type\": \"lines\"}");
  Call("echo", {S("a\xe2\x80\xa8" "b\xc2\x85" "c"), S("s.txt")});
  EXPECT_EQ(Call("wc", {S("s.txt")}), "{\"count\": 3, \"type\": \"lines\"}");
  EXPECT_EQ(Call("wc", {S("s.txt"), S("c")}), "{\"count\": 5, \"type\": \"characters\"}");
  Call("echo", {S(" x\xc2\xa0y\xe3\x80\x80z  "), S("s.txt")});
  EXPECT_EQ(Call("wc", {S("s.txt"), S("w")}), "{\"count\": 3, \"type\": \"words\"}");
}

TEST_F(GfsTest, Du) {
  EXPECT_EQ(Call("du", {}), "{\"disk_usage\": \"70 bytes\"}");
  EXPECT_EQ(Call("du", {PyValue::Bool(true)}), "{\"disk_usage\": \"70.00 B\"}");
  Call("touch", {S("big")});
  Call("echo", {S(std::string(3289, 'x')), S("big")});
  EXPECT_EQ(Call("du", {PyValue::Bool(true)}), "{\"disk_usage\": \"3.28 KB\"}");
  Call("cd", {S("archive")});
  EXPECT_EQ(Call("du", {}), "{\"disk_usage\": \"0 bytes\"}");
}

TEST_F(GfsTest, MvRmRmdir) {
  EXPECT_EQ(Call("mv", {S("zz"), S("a")}),
            "{\"error\": \"mv: cannot move 'zz': No such file or directory\"}");
  EXPECT_EQ(Call("mv", {S("notes.txt"), S("a/b")}),
            "{\"error\": \"mv: path not allowed in destination. Provide only a file or directory "
            "name.\"}");
  EXPECT_EQ(Call("mv", {S("document"), S("notes.txt")}),
            "{\"error\": \"mv: cannot move 'document' to 'notes.txt': Not a directory\"}");
  EXPECT_EQ(Call("mv", {S("notes.txt"), S("archive")}),
            "{\"result\": \"'notes.txt' moved to 'archive/notes.txt'\"}");
  Call("touch", {S("notes.txt")});
  EXPECT_EQ(Call("mv", {S("notes.txt"), S("archive")}),
            "{\"error\": \"mv: cannot move 'notes.txt' to 'archive/notes.txt': File exists\"}");
  EXPECT_EQ(Call("mv", {S("notes.txt"), S("renamed")}),
            "{\"result\": \"'notes.txt' moved to 'renamed'\"}");
  EXPECT_EQ(Call("ls", {}),
            "{\"current_directory_content\": [\"document\", \"archive\", \"renamed\"]}");
  // A moved directory shares its contents map with the detached original.
  EXPECT_EQ(Call("mv", {S("document"), S("archive")}),
            "{\"result\": \"'document' moved to 'archive/document'\"}");
  Call("cd", {S("archive")});
  Call("cd", {S("document")});
  Call("cd", {S("sub")});
  Call("cd", {S("..")});
  EXPECT_EQ(Call("pwd", {}), "{\"current_working_directory\": \"/workspace/document\"}");
  EXPECT_EQ(Call("ls", {}),
            "{\"current_directory_content\": [\"report.txt\", \"draft.txt\", \"sub\"]}");
  Call("cd", {S("/")});
  EXPECT_EQ(Call("rm", {S("zz")}),
            "{\"error\": \"rm: cannot remove 'zz': No such file or directory\"}");
  EXPECT_EQ(Call("rm", {S("renamed")}), "{\"result\": \"'renamed' removed\"}");
  EXPECT_EQ(Call("rmdir", {S("zz")}),
            "{\"error\": \"rmdir: cannot remove 'zz': No such file or directory\"}");
  Call("touch", {S("f")});
  EXPECT_EQ(Call("rmdir", {S("f")}), "{\"error\": \"rmdir: cannot remove 'f': Not a directory\"}");
  EXPECT_EQ(Call("rmdir", {S("archive")}),
            "{\"error\": \"rmdir: cannot remove 'archive': Directory not empty\"}");
  Call("mkdir", {S("empty")});
  EXPECT_EQ(Call("rmdir", {S("empty")}), "{\"result\": \"'empty' removed\"}");
  EXPECT_EQ(Call("rm", {PyValue::List({})}), "Error during execution: unhashable type: 'list'");
  EXPECT_EQ(Call("rm", {I(3)}), "{\"error\": \"rm: cannot remove '3': No such file or directory\"}");
}

TEST_F(GfsTest, CpSharesChildren) {
  EXPECT_EQ(Call("cp", {S("zz"), S("a")}),
            "{\"error\": \"cp: cannot copy 'zz': No such file or directory\"}");
  EXPECT_EQ(Call("cp", {S("notes.txt"), S("x/y")}),
            "{\"error\": \"cp: path not allowed in destination. Provide only a file or directory "
            "name.\"}");
  EXPECT_EQ(Call("cp", {S("document"), S("notes.txt")}),
            "{\"error\": \"cp: cannot copy 'document' to 'notes.txt': Not a directory\"}");
  EXPECT_EQ(Call("cp", {S("notes.txt"), S("archive")}),
            "{\"result\": \"'notes.txt' copied to 'archive/notes.txt'\"}");
  EXPECT_EQ(Call("cp", {S("notes.txt"), S("archive")}),
            "Error during execution: File 'notes.txt' already exists in directory 'archive'.");
  EXPECT_EQ(Call("cp", {S("document"), S("doc2")}),
            "{\"result\": \"'document' copied to 'doc2'\"}");
  // The copy's children are the original's objects: a write through the copy shows in both.
  Call("cd", {S("doc2")});
  Call("echo", {S("changed"), S("report.txt")});
  Call("touch", {S("only_in_copy")});
  Call("cd", {S("/")});
  Call("cd", {S("document")});
  EXPECT_EQ(Call("cat", {S("report.txt")}), "{\"file_content\": \"changed\"}");
  EXPECT_EQ(Call("ls", {}),
            "{\"current_directory_content\": [\"report.txt\", \"draft.txt\", \"sub\"]}");
  Call("cd", {S("..")});
  EXPECT_EQ(Call("cp", {S("document"), S("archive")}),
            "{\"result\": \"'document' copied to 'archive/document'\"}");
  EXPECT_EQ(Call("cp", {S("document"), S("archive")}),
            "Error during execution: Directory 'document' already exists in directory 'archive'.");
}

TEST_F(GfsTest, CloneIsIndependentAndKeepsAliasing) {
  Call("cp", {S("document"), S("doc2")});
  std::unique_ptr<ToolApi> clone = fs_.Clone();
  EXPECT_EQ(clone->PublicState(), fs_.PublicState());
  PyArgs args;
  args.positional = {S("doc2")};
  clone->Invoke("cd", args);
  args.positional = {S("zzz"), S("report.txt")};
  EXPECT_EQ(clone->Invoke("echo", args).ResultString(), "None");
  EXPECT_NE(clone->PublicState(), fs_.PublicState());
  Call("cd", {S("document")});
  EXPECT_EQ(Call("cat", {S("report.txt")}), "{\"file_content\": \"b line\\na line\\r\\nc line\\n\"}");
  args.positional = {S("..")};
  clone->Invoke("cd", args);
  args.positional = {S("document")};
  clone->Invoke("cd", args);
  args.positional = {S("report.txt")};
  EXPECT_EQ(clone->Invoke("cat", args).ResultString(), "{\"file_content\": \"zzz\"}");
}

TEST_F(GfsTest, PublicStateShape) {
  PyValue state = fs_.PublicState();
  ASSERT_TRUE(state.is_dict());
  EXPECT_EQ(*state.dict().Find("long_context"), PyValue::Bool(false));
  const PyValue* root = state.dict().Find("root");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(*root->dict().Find("name"), S("workspace"));
  EXPECT_EQ(*root->dict().Find("type"), S("directory"));
  const PyValue* notes = root->dict().Find("contents")->dict().Find("notes.txt");
  ASSERT_NE(notes, nullptr);
  EXPECT_EQ(*notes, PyValue::Dict({{S("type"), S("file")},
                                   {S("name"), S("notes.txt")},
                                   {S("content"), S("hello world\n")}}));
}

TEST_F(GfsTest, LongContextPadding) {
  const PyValue& lc = LongContextConstants();
  if (!lc.is_dict()) GTEST_SKIP() << "long_context_constants.json not found under " << SharedDir();
  SandboxContext ctx;
  ctx.long_context_constants = &lc;
  GorillaFileSystem fs;
  fs.set_context(&ctx);
  PyDict leaf{{S("report.txt"), File("kept")}, {S("other.txt"), File("padded")}};
  fs.LoadScenario(
      PyValue::Dict({{S("root"), PyValue::Dict({{S("ws"), Dir({{S("leaf"), Dir(leaf)}})}})}}),
      true);
  PyArgs args;
  args.positional = {S("leaf")};
  fs.Invoke("cd", args);
  args.positional = {S("report.txt")};
  EXPECT_EQ(fs.Invoke("cat", args).ResultString(), "{\"file_content\": \"kept\"}");
  args.positional = {S("other.txt")};
  std::string padded = fs.Invoke("cat", args).ResultString();
  EXPECT_THAT(padded, StartsWith("{\"file_content\": \"paddedThe company's financials"));
  PyArgs ls;
  ls.positional = {PyValue::Bool(true)};
  PyValue listing = *fs.Invoke("ls", ls).value.dict().Find("current_directory_content");
  ASSERT_EQ(listing.items().size(), 32u);
  EXPECT_EQ(listing.items()[2], lc.dict().Find("POPULATE_FILE_EXTENSION")->items()[0]);
  EXPECT_EQ(*fs.PublicState().dict().Find("long_context"), PyValue::Bool(true));
  // The root has a subdirectory, so only the leaf is populated.
  args.positional = {S("..")};
  fs.Invoke("cd", args);
  EXPECT_EQ(fs.Invoke("ls", ls).ResultString(), "{\"current_directory_content\": [\"leaf\"]}");
}

TEST_F(GfsTest, HostileLimits) {
  std::string before = fs_.PublicState().JsonDumps();
  std::string huge(GorillaFileSystem::kMaxFileBytes + 1, 'x');
  EXPECT_THAT(Call("echo", {S(huge), S("notes.txt")}), StartsWith("{\"error\": \"echo:"));
  EXPECT_THAT(Call("echo", {S(huge)}), StartsWith("{\"error\": \"echo:"));
  EXPECT_EQ(fs_.PublicState().JsonDumps(), before);
  // Fill up to the total-bytes limit with 1 MiB files; the next write is refused.
  std::string mib(GorillaFileSystem::kMaxFileBytes, 'y');
  std::string last;
  for (int i = 0; i < 20; ++i) {
    std::string name = "f" + std::to_string(i);
    Call("touch", {S(name)});
    last = Call("echo", {S(mib), S(name)});
    if (last != "None") break;
  }
  EXPECT_THAT(last, HasSubstr("limit"));
  // Garbage from repeated moves is collected rather than counted forever.
  Call("rm", {S("f0")});
  for (int i = 0; i < 40; ++i) {
    EXPECT_THAT(Call("mv", {S("f1"), S("g")}), HasSubstr("moved"));
    EXPECT_THAT(Call("mv", {S("g"), S("f1")}), HasSubstr("moved"));
  }
  // The self-containing directory of cp(d, d) makes find hit the recursion limit.
  Call("mkdir", {S("loop")});
  Call("cp", {S("loop"), S("loop")});
  EXPECT_THAT(Call("find", {S("loop")}),
              StartsWith("Error during execution: maximum recursion depth exceeded"));
}

// ---- Augmentation (METHOD.md §5.1): condition -> hint on, BFCL text off, state unchanged. ----
struct AugCase {
  std::vector<std::string> setup_cd;  // directories to enter first
  std::string method;
  std::vector<PyValue> args;
  std::string bfcl;          // exact BFCL result with augmentation off
  std::string hint_substr;   // a distinctive part of the augmented text
};

TEST_F(GfsTest, AugmentationTable) {
  const std::vector<AugCase> cases = {
      {{}, "cd", {S("document/sub")},
       "{\"error\": \"cd: document/sub: Unsupported path. Only one folder level at a time is "
       "supported.\"}",
       "paths are not allowed, cd one directory at a time"},
      {{}, "cd", {S("nope")}, "{\"error\": \"cd: 'nope': No such file or directory\"}",
       "no directory named 'nope' in the current directory 'workspace'"},
      {{}, "mkdir", {S("a/b")},
       "{\"error\": \"mkdir: cannot create directory 'a/b': Invalid character\"}",
       "paths are not allowed"},
      {{}, "mkdir", {S("a*b")},
       "{\"error\": \"mkdir: cannot create directory 'a*b': Invalid character\"}",
       "| / \\\\ ? % * : \\\" > <"},
      {{}, "mkdir", {S("archive")},
       "{\"error\": \"mkdir: cannot create directory 'archive': File exists\"}",
       "already exists in the current directory"},
      {{}, "touch", {S("x/y")}, "{\"error\": \"touch: cannot touch 'x/y': Invalid character\"}",
       "paths are not allowed"},
      {{}, "touch", {S("x|y")}, "{\"error\": \"touch: cannot touch 'x|y': Invalid character\"}",
       "names cannot contain"},
      {{}, "touch", {S("notes.txt")},
       "{\"error\": \"touch: cannot touch 'notes.txt': File exists\"}", "already exists"},
      {{}, "echo", {S("c"), S("d/e")},
       "{\"error\": \"echo: cannot write to 'd/e': Invalid character\"}", "paths are not allowed"},
      {{}, "echo", {S("c"), S("d%e")},
       "{\"error\": \"echo: cannot write to 'd%e': Invalid character\"}", "names cannot contain"},
      {{}, "echo", {S("c"), S("document")},
       "Error during execution: 'Directory' object has no attribute '_write'",
       "{\"error\": \"echo: cannot write to 'document': 'document' is a directory"},
      {{}, "wc", {S("document/report.txt")},
       "{\"error\": \"wc: document/report.txt: No such file or directory\"}",
       "paths are not allowed"},
      {{}, "wc", {S("document")}, "{\"error\": \"wc: document: No such file or directory\"}",
       "is a directory"},
      {{}, "wc", {S("zz")}, "{\"error\": \"wc: zz: No such file or directory\"}",
       "no file named 'zz' in the current directory 'workspace'"},
      {{}, "sort", {S("document")}, "{\"error\": \"sort: document: No such file or directory\"}",
       "is a directory"},
      {{}, "sort", {S("a/b")}, "{\"error\": \"sort: a/b: No such file or directory\"}",
       "paths are not allowed"},
      {{}, "sort", {S("zz")}, "{\"error\": \"sort: zz: No such file or directory\"}",
       "in the current directory"},
      {{}, "grep", {S("a/b"), S("x")}, "{\"error\": \"grep: a/b: No such file or directory\"}",
       "paths are not allowed"},
      {{}, "grep", {S("document"), S("x")},
       "{\"error\": \"grep: document: No such file or directory\"}", "is a directory"},
      {{}, "grep", {S("zz"), S("x")}, "{\"error\": \"grep: zz: No such file or directory\"}",
       "in the current directory"},
      {{}, "tail", {S("document")}, "{\"error\": \"tail: document: No such file or directory\"}",
       "is a directory"},
      {{}, "tail", {S("a/b")}, "{\"error\": \"tail: a/b: No such file or directory\"}",
       "paths are not allowed"},
      {{}, "tail", {S("zz")}, "{\"error\": \"tail: zz: No such file or directory\"}",
       "in the current directory"},
      {{}, "diff", {S("a/b"), S("notes.txt")},
       "{\"error\": \"diff: a/b or notes.txt: No such file or directory\"}",
       "paths are not allowed"},
      {{}, "diff", {S("x1"), S("x2")},
       "{\"error\": \"diff: x1 or x2: No such file or directory\"}", "neither 'x1' nor 'x2'"},
      {{}, "diff", {S("x1"), S("notes.txt")},
       "{\"error\": \"diff: x1 or notes.txt: No such file or directory\"}", "no file named 'x1'"},
      {{}, "diff", {S("notes.txt"), S("x2")},
       "{\"error\": \"diff: notes.txt or x2: No such file or directory\"}", "no file named 'x2'"},
      {{}, "diff", {S("document"), S("archive")},
       "{\"error\": \"diff: document or archive: No such file or directory\"}",
       "'document' and 'archive' are directories"},
      {{}, "diff", {S("notes.txt"), S("archive")},
       "{\"error\": \"diff: notes.txt or archive: No such file or directory\"}",
       "'archive' is a directory"},
      {{}, "mv", {S("a/notes.txt"), S("x")},
       "{\"error\": \"mv: cannot move 'a/notes.txt': No such file or directory\"}",
       "paths are not allowed in the source"},
      {{}, "mv", {S("zz"), S("x")},
       "{\"error\": \"mv: cannot move 'zz': No such file or directory\"}",
       "no file or directory named 'zz'"},
      {{}, "mv", {S("notes.txt"), S("a/b")},
       "{\"error\": \"mv: path not allowed in destination. Provide only a file or directory "
       "name.\"}",
       "paths are not allowed in the destination"},
      {{"document"}, "mv", {S("report.txt"), S("draft.txt")},
       "{\"error\": \"mv: cannot move 'report.txt' to 'draft.txt': Not a directory\"}",
       "overwriting is not allowed"},
      {{}, "rm", {S("a/b")}, "{\"error\": \"rm: cannot remove 'a/b': No such file or directory\"}",
       "paths are not allowed"},
      {{}, "rm", {S("zz")}, "{\"error\": \"rm: cannot remove 'zz': No such file or directory\"}",
       "no file or directory named 'zz' in the current directory"},
      {{}, "rmdir", {S("a/b")},
       "{\"error\": \"rmdir: cannot remove 'a/b': No such file or directory\"}",
       "paths are not allowed"},
      {{}, "rmdir", {S("zz")},
       "{\"error\": \"rmdir: cannot remove 'zz': No such file or directory\"}",
       "no directory named 'zz'"},
      {{}, "cp", {S("a/b"), S("x")},
       "{\"error\": \"cp: cannot copy 'a/b': No such file or directory\"}",
       "paths are not allowed in the source"},
      {{}, "cp", {S("zz"), S("x")},
       "{\"error\": \"cp: cannot copy 'zz': No such file or directory\"}",
       "in the current directory"},
      {{}, "cp", {S("notes.txt"), S("a/b")},
       "{\"error\": \"cp: path not allowed in destination. Provide only a file or directory "
       "name.\"}",
       "paths are not allowed in the destination"},
  };
  for (bool augment : {false, true}) {
    for (const AugCase& c : cases) {
      SCOPED_TRACE(c.method + " " + c.bfcl + (augment ? " [augment]" : ""));
      SandboxContext ctx;
      ctx.augment = augment;
      GorillaFileSystem fs;
      fs.set_context(&ctx);
      fs.LoadScenario(Scenario(), false);
      for (const std::string& d : c.setup_cd) {
        PyArgs cd;
        cd.positional = {S(d)};
        fs.Invoke("cd", cd);
      }
      std::string before = fs.PublicState().JsonDumps();
      PyArgs args;
      args.positional = c.args;
      CallOutcome out = fs.Invoke(c.method, args);
      std::string text = out.ResultString();
      if (augment) {
        EXPECT_THAT(text, HasSubstr(c.hint_substr));
        EXPECT_NE(text, c.bfcl);
        // Shape: dict errors stay dict errors (echo into a directory becomes one).
        EXPECT_FALSE(out.raised());
        EXPECT_THAT(text, StartsWith("{\"error\": "));
      } else {
        EXPECT_EQ(text, c.bfcl);
      }
      EXPECT_EQ(fs.PublicState().JsonDumps(), before);
    }
  }
}

TEST_F(GfsTest, AugmentationLeavesOtherBranchesAlone) {
  ctx_.augment = true;
  EXPECT_EQ(Call("cd", {S("..")}),
            "{\"error\": \"Current directory is already the root. Cannot go back.\"}");
  EXPECT_EQ(Call("cat", {S("zz")}), "{\"error\": \"cat: 'zz': No such file or directory\"}");
  EXPECT_EQ(Call("echo", {S("x"), S("missing")}),
            "{\"error\": \"echo: cannot write to 'missing': No such file\"}");
  EXPECT_EQ(Call("rmdir", {S("notes.txt")}),
            "{\"error\": \"rmdir: cannot remove 'notes.txt': Not a directory\"}");
  EXPECT_EQ(Call("cd", {S("document")}), "{\"current_working_directory\": \"document\"}");
}

}  // namespace
}  // namespace envtune
