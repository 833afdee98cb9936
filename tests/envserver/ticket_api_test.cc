// Unit tests of the TicketAPI sandbox against ../shared/bfcl/spec/ticket_api.md: every method's
// success and error branches, in-place ticket edits, Python type-misuse texts, the sorted
// "Invalid fields" message and hostile-input limits.
#include "envserver/apis/ticket_api.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

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
constexpr char kScenario[] = R"({
  "ticket_queue": [{"id": 1, "status": "Open", "description": "d1", "created_by": "u"},
                   {"id": 2, "created_by": "other", "issue": "x", "status": "Closed"}],
  "ticket_counter": 3, "current_user": "u"})";

class TicketApiTest : public ConcreteApiTest<TicketApi> {
 protected:
  std::string Queue() { return api_.PublicState().dict().Find("ticket_queue")->JsonDumps(); }
};

TEST_F(TicketApiTest, RegisteredAndDefaultState) {
  absl::StatusOr<std::unique_ptr<ToolApi>> api = CreateToolApi("TicketAPI");
  ASSERT_TRUE(api.ok());
  EXPECT_EQ((*api)->ClassName(), "TicketAPI");
  Load("{}");
  EXPECT_EQ(api_.PublicState().JsonDumps(),
            R"({"ticket_queue": [], "ticket_counter": 1, "current_user": null})");
}

TEST_F(TicketApiTest, LoginLogoutStatus) {
  Load("{}");
  EXPECT_EQ(Call("ticket_get_login_status"), R"({"login_status": false})");
  EXPECT_EQ(Call("logout"), R"({"success": false})");
  EXPECT_EQ(Call("ticket_login", Kw({{"username", S("a")}, {"password", S("")}})),
            R"({"success": false})");
  EXPECT_EQ(Call("ticket_login", Kw({{"username", S("a")}, {"password", S("p")}})),
            R"({"success": true})");
  EXPECT_EQ(Call("ticket_get_login_status"), R"({"login_status": true})");
  EXPECT_EQ(Call("logout"), R"({"success": true})");
  EXPECT_EQ(Call("ticket_get_login_status"), R"({"login_status": false})");
}

TEST_F(TicketApiTest, CreateTicket) {
  Load("{}");
  EXPECT_EQ(Call("create_ticket", Kw({{"title", S("t")}})),
            R"({"error": "User not authenticated. Please log in to create a ticket."})");
  Call("ticket_login", Pos({S("tech_guru"), S("pw")}));
  EXPECT_EQ(Call("create_ticket", Kw({{"title", S("emergency")},
                                      {"description", S("Initial project plan details.")},
                                      {"priority", I(3)}})),
            R"({"id": 1, "title": "emergency", "description": "Initial project plan details.", )"
            R"("status": "Open", "priority": 3, "created_by": "tech_guru"})");
  EXPECT_EQ(Call("create_ticket", Pos({S("x")})),
            R"({"id": 2, "title": "x", "description": "", "status": "Open", "priority": 1, )"
            R"("created_by": "tech_guru"})");
  EXPECT_EQ(Call("create_ticket", Pos({S("x"), S(""), I(0)})),
            R"({"error": "Invalid priority. Priority must be between 1 and 5."})");
  EXPECT_EQ(Call("create_ticket", Pos({S("x"), S(""), I(6)})),
            R"({"error": "Invalid priority. Priority must be between 1 and 5."})");
  EXPECT_EQ(Call("create_ticket", Pos({S("x"), S(""), S("high")})),
            "Error during execution: '<' not supported between instances of 'str' and 'int'");
  EXPECT_THAT(Call("create_ticket", Pos({S("x"), S(""), PyValue::Float(2.5)})),
              ::testing::HasSubstr(R"("priority": 2.5)"));
  EXPECT_EQ(api_.PublicState().dict().Find("ticket_counter")->as_int(), 4);
}

TEST_F(TicketApiTest, GetTicketUsesPythonEquality) {
  Load(kScenario);
  EXPECT_EQ(Call("get_ticket", Pos({I(1)})),
            R"({"id": 1, "status": "Open", "description": "d1", "created_by": "u"})");
  EXPECT_EQ(Call("get_ticket", Pos({PyValue::Float(1.0)})), Call("get_ticket", Pos({I(1)})));
  EXPECT_EQ(Call("get_ticket", Pos({S("1")})), R"({"error": "Ticket with ID 1 not found."})");
  EXPECT_EQ(Call("get_ticket", Pos({I(9)})), R"({"error": "Ticket with ID 9 not found."})");
  Load(R"({"ticket_queue": [{"ticket_001": {"id": 1}}]})");
  EXPECT_EQ(Call("get_ticket", Pos({I(1)})), "Error during execution: 'id'");
}

TEST_F(TicketApiTest, CloseAndResolve) {
  Load(kScenario);
  EXPECT_EQ(Call("close_ticket", Pos({I(1)})),
            R"({"status": "Ticket 1 has been closed successfully."})");
  EXPECT_EQ(Call("close_ticket", Pos({I(1)})),
            R"({"error": "Ticket with ID 1 is already closed."})");
  EXPECT_EQ(Call("close_ticket", Pos({I(5)})), R"({"error": "Ticket with ID 5 not found."})");
  EXPECT_EQ(Call("resolve_ticket", Kw({{"ticket_id", I(1)}, {"resolution", S("done")}})),
            R"({"status": "Ticket 1 has been resolved successfully."})");
  EXPECT_EQ(Call("resolve_ticket", Pos({I(1), S("again")})),
            R"({"error": "Ticket with ID 1 is already resolved."})");
  EXPECT_EQ(Call("resolve_ticket", Pos({I(5), S("x")})),
            R"({"error": "Ticket with ID 5 not found."})");
  EXPECT_EQ(Queue(), R"([{"id": 1, "status": "Resolved", "description": "d1", "created_by": "u", )"
                     R"("resolution": "done"}, {"id": 2, "created_by": "other", "issue": "x", )"
                     R"("status": "Closed"}])");
  Load(R"({"ticket_queue": [{"id": 1}]})");
  EXPECT_EQ(Call("close_ticket", Pos({I(1)})), "Error during execution: 'status'");
}

TEST_F(TicketApiTest, EditTicket) {
  Load(kScenario);
  EXPECT_EQ(Call("edit_ticket",
                 Kw({{"ticket_id", I(1)},
                     {"updates", Json(R"({"priority": 9, "title": "T", "status": null})")}})),
            R"({"status": "Ticket 1 has been updated successfully."})");
  EXPECT_EQ(Call("get_ticket", Pos({I(1)})),
            R"({"id": 1, "status": "Open", "description": "d1", "created_by": "u", )"
            R"("priority": 9, "title": "T"})");
  EXPECT_EQ(Call("edit_ticket", Pos({I(1), Json(R"({"foo": 1})")})),
            R"({"error": "Invalid fields for update: foo"})");
  // Several invalid fields: Python's set order is arbitrary; ours is sorted.
  EXPECT_EQ(Call("edit_ticket", Pos({I(1), Json(R"({"zeta": 1, "alpha": 2, "title": "x"})")})),
            R"({"error": "Invalid fields for update: alpha, zeta"})");
  EXPECT_EQ(Call("edit_ticket", Pos({I(1), PyValue::List()})),
            "Error during execution: 'list' object has no attribute 'keys'");
  EXPECT_EQ(Call("edit_ticket", Pos({I(7), Json("{}")})),
            R"({"error": "Ticket with ID 7 not found."})");
}

TEST_F(TicketApiTest, GetUserTickets) {
  Load("{}");
  EXPECT_EQ(Call("get_user_tickets"),
            "[{'error': 'User not authenticated. Please log in to view tickets.'}]");
  Load(kScenario);
  EXPECT_EQ(Call("get_user_tickets"),
            "[{'id': 1, 'status': 'Open', 'description': 'd1', 'created_by': 'u'}]");
  EXPECT_EQ(Call("get_user_tickets", Kw({{"status", S("OPEN")}})),
            "[{'id': 1, 'status': 'Open', 'description': 'd1', 'created_by': 'u'}]");
  EXPECT_EQ(Call("get_user_tickets", Kw({{"status", S("closed")}})), "[]");
  EXPECT_EQ(Call("get_user_tickets", Kw({{"status", I(3)}})),
            "Error during execution: 'int' object has no attribute 'lower'");
  Load(R"({"ticket_queue": [{"id": 1}], "current_user": "u"})");
  EXPECT_EQ(Call("get_user_tickets"), "Error during execution: 'created_by'");
}

TEST_F(TicketApiTest, ArgumentBindingErrors) {
  Load("{}");
  EXPECT_EQ(Call("resolve_ticket", {}),
            "Error during execution: TicketAPI.resolve_ticket() missing 2 required positional "
            "arguments: 'ticket_id' and 'resolution'");
  EXPECT_EQ(Call("create_ticket", Pos({S("a"), S("b"), I(1), I(2)})),
            "Error during execution: TicketAPI.create_ticket() takes from 2 to 4 positional "
            "arguments but 5 were given");
  PyArgs both = Pos({I(1)});
  both.keywords = {{"ticket_id", I(1)}};
  EXPECT_EQ(Call("get_ticket", both),
            "Error during execution: TicketAPI.get_ticket() got multiple values for argument "
            "'ticket_id'");
}

TEST_F(TicketApiTest, HostileInputLimits) {
  Load(kScenario);
  std::string huge(social::kMaxStoredValueBytes + 1, 'x');
  EXPECT_EQ(Call("create_ticket", Pos({PyValue::Str(huge)})),
            R"({"error": "Ticket is too large (limit 16384 bytes)."})");
  EXPECT_EQ(Call("resolve_ticket", Pos({I(1), PyValue::Str(huge)})),
            R"({"error": "Resolution is too large (limit 16384 bytes)."})");
  PyDict updates;
  updates.Set("title", PyValue::Str(huge));
  EXPECT_EQ(Call("edit_ticket", Pos({I(1), PyValue::Dict(updates)})),
            R"({"error": "Ticket update is too large (limit 16384 bytes)."})");
  EXPECT_EQ(Call("get_ticket", Pos({I(1)})),
            R"({"id": 1, "status": "Open", "description": "d1", "created_by": "u"})");
  for (size_t i = 2; i < social::kMaxCollectionEntries; ++i) {
    ASSERT_THAT(Call("create_ticket", Pos({S("t")})), ::testing::HasSubstr("\"id\""));
  }
  EXPECT_EQ(Call("create_ticket", Pos({S("t")})), R"({"error": "Too many tickets (limit 1000)."})");
}

}  // namespace
}  // namespace envtune
