// Unit tests of the MessageAPI sandbox against ../shared/bfcl/spec/message_api.md: every method's
// success and error branches, the seeded message ids, Python type-misuse texts, hostile-input
// limits and the public state.
#include "envserver/apis/message_api.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "envserver/apis/apis.h"
#include "envserver/apis/social_pyops.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/envserver/api_test_util.h"

namespace envtune {
namespace {

using namespace api_test;  // NOLINT(build/namespaces)
class MessageApiTest : public ConcreteApiTest<MessageApi> {
 protected:
  void Login() {
    ASSERT_EQ(Call("message_login", Kw({{"user_id", S("USR001")}})),
              R"({"login_status": true, "message": "User 'USR001' logged in successfully."})");
  }
};

TEST_F(MessageApiTest, RegisteredUnderItsClassName) {
  absl::StatusOr<std::unique_ptr<ToolApi>> api = CreateToolApi("MessageAPI");
  ASSERT_TRUE(api.ok());
  EXPECT_EQ((*api)->ClassName(), "MessageAPI");
  EXPECT_THAT((*api)->MethodNames(),
              ::testing::ElementsAre("list_users", "get_user_id", "message_login",
                                     "message_get_login_status", "send_message", "delete_message",
                                     "view_messages_sent", "add_contact", "search_messages",
                                     "get_message_stats"));
}

TEST_F(MessageApiTest, DefaultStateMatchesBfcl) {
  Load("{}");
  EXPECT_EQ(api_.PublicState().JsonDumps(),
            R"({"generated_ids": [], "user_count": 4, "user_map": {"Alice": "USR001", )"
            R"("Bob": "USR002", "Catherine": "USR003", "Daniel": "USR004"}, "inbox": )"
            R"([{"USR002": "My name is Alice. I want to connect."}, {"USR003": "Could you )"
            R"(upload the file?"}, {"USR004": "Could you upload the file?"}], )"
            R"("message_count": 3, "current_user": null})");
  EXPECT_TRUE(api_.PublicState().dict().Find("generated_ids")->is_set());
}

TEST_F(MessageApiTest, ScenarioValuesAreTakenAsIs) {
  Load(R"({"user_count": 7, "user_map": {"Zed": "USR007"}, "inbox": [{"USR007": ["x"]}],
           "current_user": null, "message_count": 0})");
  PyValue state = api_.PublicState();
  EXPECT_EQ(state.dict().Find("user_count")->as_int(), 7);
  EXPECT_EQ(state.dict().Find("inbox")->JsonDumps(), R"([{"USR007": ["x"]}])");
  EXPECT_TRUE(state.dict().Find("current_user")->is_none());
}

TEST_F(MessageApiTest, ListUsersAndGetUserId) {
  Load("{}");
  EXPECT_EQ(Call("list_users"), R"({"user_list": ["Alice", "Bob", "Catherine", "Daniel"]})");
  EXPECT_EQ(Call("get_user_id", Kw({{"user", S("Bob")}})), R"({"user_id": "USR002"})");
  EXPECT_EQ(Call("get_user_id", Kw({{"user", S("Eve")}})),
            R"({"error": "User 'Eve' not found in the workspace."})");
  EXPECT_EQ(Call("get_user_id", Kw({{"user", PyValue::List({S("Bob")})}})),
            "Error during execution: unhashable type: 'list'");
}

TEST_F(MessageApiTest, LoginAndStatus) {
  Load("{}");
  EXPECT_EQ(Call("message_get_login_status"), R"({"login_status": false})");
  EXPECT_EQ(Call("message_login", Kw({{"user_id", S("USR999")}})),
            R"({"login_status": false, "message": "User ID 'USR999' not found."})");
  EXPECT_EQ(Call("message_get_login_status"), R"({"login_status": false})");
  Login();
  EXPECT_EQ(Call("message_get_login_status"), R"({"login_status": true})");
  // A name rather than an id still counts as logged in.
  Load(R"({"current_user": "Jack"})");
  EXPECT_EQ(Call("message_get_login_status"), R"({"login_status": true})");
  Load(R"({"current_user": ""})");
  EXPECT_EQ(Call("message_get_login_status"), R"({"login_status": false})");
}

TEST_F(MessageApiTest, SendMessageDrawsSeededIds) {
  Load("{}");
  EXPECT_EQ(Call("send_message", Kw({{"receiver_id", S("USR002")}, {"message", S("hi")}})),
            R"({"error": "No user is currently logged in."})");
  Login();
  EXPECT_EQ(Call("send_message", Kw({{"receiver_id", S("USR009")}, {"message", S("hi")}})),
            R"({"error": "Receiver ID 'USR009' not found."})");
  // The failed sends consumed no draws: the first id is the seed-200191 test vector's first.
  const int64_t kExpected[] = {67410, 41772, 24547, 24421};
  for (int64_t id : kExpected) {
    EXPECT_EQ(Call("send_message", Pos({S("USR003"), S("hello")})),
              absl::StrCat(R"({"sent_status": true, "message_id": {"new_id": )", id,
                           R"(}, "message": "Message sent to 'USR003' successfully."})"));
  }
  PyValue state = api_.PublicState();
  EXPECT_EQ(state.dict().Find("message_count")->as_int(), 7);
  EXPECT_EQ(state.dict().Find("inbox")->items().size(), 7u);
  EXPECT_EQ(state.dict().Find("generated_ids")->JsonDumps(), "[24421, 24547, 41772, 67410]");
}

TEST_F(MessageApiTest, RandomSeedFromScenarioAndRedrawOnCollision) {
  Load(R"({"current_user": "USR001"})");
  std::string first = Call("send_message", Pos({S("USR002"), S("a")}));
  Load(R"({"current_user": "USR001", "random_seed": 200191})");
  EXPECT_EQ(Call("send_message", Pos({S("USR002"), S("a")})), first);
  Load(R"({"current_user": "USR001", "random_seed": 1})");
  EXPECT_NE(Call("send_message", Pos({S("USR002"), S("a")})), first);
  // A scenario-supplied generated_ids is a list: one draw, then list.add fails.
  Load(R"({"current_user": "USR001", "generated_ids": []})");
  EXPECT_EQ(Call("send_message", Pos({S("USR002"), S("a")})),
            "Error during execution: 'list' object has no attribute 'add'");
}

TEST_F(MessageApiTest, DeleteMessageRemovesLatestAndFrontCopyOfDuplicates) {
  Load(R"({"current_user": "USR001", "inbox": [{"A": "x"}, {"B": "y"}, {"A": "x"}]})");
  EXPECT_EQ(Call("delete_message", Kw({{"receiver_id", S("A")}})),
            R"({"deleted_status": true, "receiver_id": "A", "message": "Receiver A's latest )"
            R"(message deleted successfully."})");
  EXPECT_EQ(api_.PublicState().dict().Find("inbox")->JsonDumps(), R"([{"B": "y"}, {"A": "x"}])");
  EXPECT_EQ(Call("delete_message", Kw({{"receiver_id", S("Z")}})),
            R"({"error": "Receiver ID Z not found."})");
  EXPECT_EQ(api_.PublicState().dict().Find("message_count")->as_int(), 3);
  Load("{}");
  EXPECT_EQ(Call("delete_message", Kw({{"receiver_id", S("USR002")}})),
            R"({"error": "No user is currently logged in."})");
  Load(R"({"current_user": "USR001", "inbox": [{}]})");
  EXPECT_EQ(Call("delete_message", Kw({{"receiver_id", S("A")}})),
            "Error during execution: list index out of range");
}

TEST_F(MessageApiTest, ViewMessagesSentGroupsByReceiver) {
  Load(R"({"current_user": "USR001", "inbox": [{"USR003": ["Thanks"]}, {"USR002": "a"},
           {"USR003": "update"}]})");
  EXPECT_EQ(Call("view_messages_sent"),
            R"({"messages": {"USR003": [["Thanks"], "update"], "USR002": ["a"]}})");
  Load("{}");
  EXPECT_EQ(Call("view_messages_sent"), R"({"error": "No user is currently logged in."})");
}

TEST_F(MessageApiTest, AddContact) {
  Load("{}");
  EXPECT_EQ(Call("add_contact", Kw({{"user_name", S("Alice")}})),
            R"({"error": "User name 'Alice' already exists."})");
  EXPECT_EQ(Call("add_contact", Kw({{"user_name", S("Eve")}})),
            R"({"added_status": true, "user_id": "USR005", "message": "Contact 'Eve' added )"
            R"(successfully."})");
  EXPECT_EQ(Call("list_users"), R"({"user_list": ["Alice", "Bob", "Catherine", "Daniel", "Eve"]})");
  // The counter is incremented before the id collision check and not undone.
  Load(R"({"user_count": 1, "user_map": {"A": "USR002"}})");
  EXPECT_EQ(Call("add_contact", Kw({{"user_name", S("B")}})),
            R"({"error": "User ID 'USR002' already exists."})");
  EXPECT_EQ(api_.PublicState().dict().Find("user_count")->as_int(), 2);
  Load(R"({"user_count": 999})");
  EXPECT_THAT(Call("add_contact", Pos({S("Big")})), ::testing::HasSubstr("\"USR1000\""));
}

TEST_F(MessageApiTest, SearchMessages) {
  Load(R"({"current_user": "USR001"})");
  EXPECT_EQ(Call("search_messages", Kw({{"keyword", S("UPLOAD")}})),
            R"({"results": [{"receiver_id": "USR003", "message": "Could you upload the file?"}, )"
            R"({"receiver_id": "USR004", "message": "Could you upload the file?"}]})");
  EXPECT_EQ(Call("search_messages", Kw({{"keyword", S("nothing")}})), R"({"results": []})");
  EXPECT_EQ(Call("search_messages", Kw({{"keyword", I(5)}})),
            "Error during execution: 'int' object has no attribute 'lower'");
  Load(R"({"current_user": "USR001", "inbox": [{"USR002": ["x"]}]})");
  EXPECT_EQ(Call("search_messages", Kw({{"keyword", S("x")}})),
            "Error during execution: 'list' object has no attribute 'lower'");
  // Full Unicode lower-casing, final sigma included.
  Load(R"({"current_user": "USR001", "inbox": [{"USR002": "ΟΔΟΣ İstanbul"}]})");
  EXPECT_THAT(Call("search_messages", Kw({{"keyword", S("οδος i̇stanbul")}})),
              ::testing::HasSubstr("USR002"));
  EXPECT_EQ(Call("search_messages", Kw({{"keyword", S("οδοσ")}})), R"({"results": []})");
  Load("{}");
  EXPECT_EQ(Call("search_messages", Kw({{"keyword", S("x")}})),
            R"({"error": "No user is currently logged in."})");
}

TEST_F(MessageApiTest, NonJsonValuesFallBackToPythonStr) {
  // A set message is stored as is; json.dumps then fails and the executor uses str(dict).
  Load(R"({"current_user": "USR001", "inbox": []})");
  Call("send_message", Pos({S("USR002"), PyValue::Set({I(1), I(2)})}));
  EXPECT_EQ(Call("view_messages_sent"), "{'messages': {'USR002': [{1, 2}]}}");
}

TEST_F(MessageApiTest, GetMessageStats) {
  Load(R"({"current_user": "USR001", "inbox": [{"A": "1"}, {"B": "2"}, {"A": "3"}]})");
  EXPECT_EQ(Call("get_message_stats"), R"({"stats": {"received_count": 3, "total_contacts": 2}})");
  Load("{}");
  EXPECT_EQ(Call("get_message_stats"), R"({"error": "No user is currently logged in."})");
}

TEST_F(MessageApiTest, ArgumentBindingErrors) {
  Load("{}");
  EXPECT_EQ(Call("send_message", Pos({S("USR002")})),
            "Error during execution: MessageAPI.send_message() missing 1 required positional "
            "argument: 'message'");
  EXPECT_EQ(Call("list_users", Pos({S("x")})),
            "Error during execution: MessageAPI.list_users() takes 1 positional argument but 2 "
            "were given");
  EXPECT_EQ(Call("get_user_id", Kw({{"name", S("x")}})),
            "Error during execution: MessageAPI.get_user_id() got an unexpected keyword argument "
            "'name'");
}

TEST_F(MessageApiTest, HostileInputLimits) {
  Load(R"({"current_user": "USR001"})");
  std::string huge(social::kMaxStoredValueBytes + 1, 'x');
  EXPECT_EQ(Call("send_message", Pos({S("USR002"), PyValue::Str(huge)})),
            R"({"error": "Message is too large (limit 16384 bytes)."})");
  EXPECT_EQ(Call("add_contact", Pos({PyValue::Str(huge)})),
            R"({"error": "User name is too large (limit 16384 bytes)."})");
  // Nothing changed, no draw consumed.
  EXPECT_EQ(api_.PublicState().dict().Find("message_count")->as_int(), 3);
  EXPECT_EQ(api_.PublicState().dict().Find("user_count")->as_int(), 4);
  EXPECT_THAT(Call("send_message", Pos({S("USR002"), S("ok")})), ::testing::HasSubstr("67410"));
  for (size_t i = 4; i < social::kMaxCollectionEntries; ++i) {
    ASSERT_THAT(Call("send_message", Pos({S("USR002"), S("m")})),
                ::testing::HasSubstr("sent_status"));
  }
  EXPECT_EQ(Call("send_message", Pos({S("USR002"), S("m")})),
            R"({"error": "Too many messages in the inbox (limit 1000)."})");
}

TEST_F(MessageApiTest, CloneIsIndependentIncludingRandomState) {
  Load(R"({"current_user": "USR001"})");
  std::unique_ptr<ToolApi> copy = api_.Clone();
  std::string a = Call("send_message", Pos({S("USR002"), S("a")}));
  std::string b = copy->Invoke("send_message", Pos({S("USR002"), S("a")})).ResultString();
  EXPECT_EQ(a, b);
  EXPECT_EQ(api_.PublicState(), copy->PublicState());
  Call("add_contact", Pos({S("New")}));
  EXPECT_NE(api_.PublicState(), copy->PublicState());
}

}  // namespace
}  // namespace envtune
