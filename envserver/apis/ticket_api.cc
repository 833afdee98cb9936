#include "envserver/apis/ticket_api.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "envserver/apis/apis.h"
#include "envserver/apis/social_pyops.h"

namespace envtune {
namespace {

using social::ErrorDict;
using social::MakeDict;
using social::RaiseFrom;

PyValue TicketNotFound(const PyValue& ticket_id) {
  return ErrorDict(absl::StrCat("Ticket with ID ", ticket_id.Str(), " not found."));
}

// Python `x < n` / `x > n` against an int literal; TypeError text for non-numbers.
absl::StatusOr<bool> PyCompareInt(const PyValue& x, std::string_view op, int64_t n) {
  if (!x.is_number()) {
    return social::PyError(absl::StrCat("'", std::string(op),
                                        "' not supported between instances of '",
                                        std::string(x.TypeName()), "' and 'int'"));
  }
  // Exact for ints of any size and floats (PyValue::Less compares numbers on their values).
  const PyValue limit = PyValue::Int(n);
  return op == "<" ? PyValue::Less(x, limit) : PyValue::Less(limit, x);
}

ParamSpec Req(const char* name) { return ParamSpec{name, std::nullopt}; }
ParamSpec Opt(const char* name, PyValue default_value) {
  return ParamSpec{name, std::move(default_value)};
}

}  // namespace

TicketApi::TicketApi() { LoadScenario(PyValue::Dict(), false); }

const TicketApi::MethodTable& TicketApi::Methods() {
  static const auto* table = new MethodTable{
      {"create_ticket",
       {Req("title"), Opt("description", PyValue::Str("")), Opt("priority", PyValue::Int(1))},
       &TicketApi::CreateTicket},
      {"get_ticket", {Req("ticket_id")}, &TicketApi::GetTicket},
      {"close_ticket", {Req("ticket_id")}, &TicketApi::CloseTicket},
      {"resolve_ticket", {Req("ticket_id"), Req("resolution")}, &TicketApi::ResolveTicket},
      {"edit_ticket", {Req("ticket_id"), Req("updates")}, &TicketApi::EditTicket},
      {"ticket_login", {Req("username"), Req("password")}, &TicketApi::TicketLogin},
      {"ticket_get_login_status", {}, &TicketApi::TicketGetLoginStatus},
      {"logout", {}, &TicketApi::Logout},
      {"get_user_tickets", {Opt("status", PyValue::None())}, &TicketApi::GetUserTickets},
  };
  return *table;
}

void TicketApi::LoadScenario(const PyValue& scenario, bool /*long_context*/) {
  static const PyDict* kEmpty = new PyDict();
  const PyDict& s = scenario.is_dict() ? scenario.dict() : *kEmpty;
  auto get = [&s](std::string_view key, PyValue fallback) {
    const PyValue* v = s.Find(key);
    return v != nullptr ? *v : fallback;
  };
  ticket_queue_ = get("ticket_queue", PyValue::List());
  ticket_counter_ = get("ticket_counter", PyValue::Int(1));
  current_user_ = get("current_user", PyValue::None());
}

PyValue TicketApi::PublicState() const {
  return MakeDict({{"ticket_queue", ticket_queue_},
                   {"ticket_counter", ticket_counter_},
                   {"current_user", current_user_}});
}

absl::StatusOr<PyValue*> TicketApi::FindTicket(const PyValue& ticket_id) {
  if (ticket_queue_.is_list() || ticket_queue_.is_tuple()) {
    for (PyValue& ticket : ticket_queue_.items()) {
      absl::StatusOr<PyValue*> id = social::PyGetItem(ticket, "id");
      if (!id.ok()) return id.status();
      if (**id == ticket_id) return &ticket;
    }
    return nullptr;
  }
  // Other containers (only a malformed scenario): Python iterates them; no element can be a
  // ticket dict, so this only reproduces the error Python raises.
  absl::StatusOr<PyList> items = social::PyIterate(ticket_queue_);
  if (!items.ok()) return items.status();
  for (PyValue& item : *items) {
    absl::StatusOr<PyValue*> id = social::PyGetItem(item, "id");
    if (!id.ok()) return id.status();
  }
  return nullptr;
}

CallOutcome TicketApi::CreateTicket(const std::vector<PyValue>& a) {
  const PyValue& title = a[0];
  const PyValue& description = a[1];
  const PyValue& priority = a[2];
  if (!current_user_.Truthy()) {
    return CallOutcome::Return(
        ErrorDict("User not authenticated. Please log in to create a ticket."));
  }
  absl::StatusOr<bool> too_low = PyCompareInt(priority, "<", 1);
  if (!too_low.ok()) return RaiseFrom(too_low.status());
  bool invalid = *too_low;
  if (!invalid) {
    absl::StatusOr<bool> too_high = PyCompareInt(priority, ">", 5);
    if (!too_high.ok()) return RaiseFrom(too_high.status());
    invalid = *too_high;
  }
  if (invalid) {
    return CallOutcome::Return(ErrorDict("Invalid priority. Priority must be between 1 and 5."));
  }
  PyValue ticket = MakeDict({{"id", ticket_counter_},
                             {"title", title},
                             {"description", description},
                             {"status", PyValue::Str("Open")},
                             {"priority", priority},
                             {"created_by", current_user_}});
  // Hostile-input limits (before any state change).
  if (social::ApproxSize(ticket) > social::kMaxStoredValueBytes) {
    return CallOutcome::Return(ErrorDict(social::TooLargeText("Ticket")));
  }
  if (ticket_queue_.is_list() && ticket_queue_.items().size() >= social::kMaxCollectionEntries) {
    return CallOutcome::Return(ErrorDict(social::TooManyText("tickets")));
  }
  absl::Status appended = social::PyAppend(ticket_queue_, ticket);
  if (!appended.ok()) return RaiseFrom(appended);
  absl::Status counted = social::PyIncrement(ticket_counter_);
  if (!counted.ok()) return RaiseFrom(counted);
  return CallOutcome::Return(std::move(ticket));
}

CallOutcome TicketApi::GetTicket(const std::vector<PyValue>& a) {
  absl::StatusOr<PyValue*> ticket = FindTicket(a[0]);
  if (!ticket.ok()) return RaiseFrom(ticket.status());
  if (*ticket == nullptr) return CallOutcome::Return(TicketNotFound(a[0]));
  return CallOutcome::Return(**ticket);
}

CallOutcome TicketApi::CloseTicket(const std::vector<PyValue>& a) {
  const PyValue& ticket_id = a[0];
  absl::StatusOr<PyValue*> ticket = FindTicket(ticket_id);
  if (!ticket.ok()) return RaiseFrom(ticket.status());
  if (*ticket == nullptr) return CallOutcome::Return(TicketNotFound(ticket_id));
  absl::StatusOr<PyValue*> status = social::PyGetItem(**ticket, "status");
  if (!status.ok()) return RaiseFrom(status.status());
  if (**status == PyValue::Str("Closed")) {
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("Ticket with ID ", ticket_id.Str(), " is already closed.")));
  }
  **status = PyValue::Str("Closed");
  return CallOutcome::Return(
      MakeDict({{"status", PyValue::Str(absl::StrCat("Ticket ", ticket_id.Str(),
                                                     " has been closed successfully."))}}));
}

CallOutcome TicketApi::ResolveTicket(const std::vector<PyValue>& a) {
  const PyValue& ticket_id = a[0];
  const PyValue& resolution = a[1];
  absl::StatusOr<PyValue*> ticket = FindTicket(ticket_id);
  if (!ticket.ok()) return RaiseFrom(ticket.status());
  if (*ticket == nullptr) return CallOutcome::Return(TicketNotFound(ticket_id));
  absl::StatusOr<PyValue*> status = social::PyGetItem(**ticket, "status");
  if (!status.ok()) return RaiseFrom(status.status());
  if (**status == PyValue::Str("Resolved")) {
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("Ticket with ID ", ticket_id.Str(), " is already resolved.")));
  }
  // Hostile-input limit (before any state change).
  if (social::ApproxSize(resolution) > social::kMaxStoredValueBytes) {
    return CallOutcome::Return(ErrorDict(social::TooLargeText("Resolution")));
  }
  **status = PyValue::Str("Resolved");
  (*ticket)->dict().Set("resolution", resolution);
  return CallOutcome::Return(
      MakeDict({{"status", PyValue::Str(absl::StrCat("Ticket ", ticket_id.Str(),
                                                     " has been resolved successfully."))}}));
}

CallOutcome TicketApi::EditTicket(const std::vector<PyValue>& a) {
  const PyValue& ticket_id = a[0];
  const PyValue& updates = a[1];
  absl::StatusOr<PyValue*> ticket = FindTicket(ticket_id);
  if (!ticket.ok()) return RaiseFrom(ticket.status());
  if (*ticket == nullptr) return CallOutcome::Return(TicketNotFound(ticket_id));
  if (!updates.is_dict()) return RaiseFrom(social::AttributeError(updates, "keys"));
  // invalid_fields = set(updates.keys()) - {"title", "description", "status", "priority"}
  static const char* const kValid[] = {"title", "description", "status", "priority"};
  std::vector<std::string> invalid_str;
  std::vector<PyValue> invalid_other;
  for (const auto& [key, value] : updates.dict()) {
    const PyValue& k = key;  // clang 14 cannot capture a structured binding
    bool valid = k.is_str() && std::any_of(std::begin(kValid), std::end(kValid),
                                           [&](const char* v) { return k.as_str() == v; });
    if (valid) continue;
    if (key.is_str()) {
      invalid_str.push_back(key.as_str());
    } else {
      invalid_other.push_back(key);
    }
  }
  if (!invalid_str.empty() || !invalid_other.empty()) {
    // Python joins a set (order varies per process); we use sorted str keys, then the rest.
    std::sort(invalid_str.begin(), invalid_str.end());
    if (!invalid_other.empty()) {
      return RaiseFrom(social::PyError(
          absl::StrCat("sequence item ", invalid_str.size(), ": expected str instance, ",
                       std::string(invalid_other.front().TypeName()), " found")));
    }
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("Invalid fields for update: ", absl::StrJoin(invalid_str, ", "))));
  }
  // Hostile-input limit (before any state change).
  if (social::ApproxSize(updates) > social::kMaxStoredValueBytes) {
    return CallOutcome::Return(ErrorDict(social::TooLargeText("Ticket update")));
  }
  for (const auto& [key, value] : updates.dict()) {
    if (!value.is_none()) (*ticket)->dict().Set(key, value);
  }
  return CallOutcome::Return(
      MakeDict({{"status", PyValue::Str(absl::StrCat("Ticket ", ticket_id.Str(),
                                                     " has been updated successfully."))}}));
}

CallOutcome TicketApi::TicketLogin(const std::vector<PyValue>& a) {
  const PyValue& username = a[0];
  const PyValue& password = a[1];
  if (username.Truthy() && password.Truthy()) {
    if (social::ApproxSize(username) > social::kMaxStoredValueBytes) {
      return CallOutcome::Return(ErrorDict(social::TooLargeText("User name")));
    }
    current_user_ = username;
    return CallOutcome::Return(MakeDict({{"success", PyValue::Bool(true)}}));
  }
  return CallOutcome::Return(MakeDict({{"success", PyValue::Bool(false)}}));
}

CallOutcome TicketApi::TicketGetLoginStatus(const std::vector<PyValue>& /*a*/) {
  return CallOutcome::Return(MakeDict({{"login_status", PyValue::Bool(current_user_.Truthy())}}));
}

CallOutcome TicketApi::Logout(const std::vector<PyValue>& /*a*/) {
  if (current_user_.Truthy()) {
    current_user_ = PyValue::None();
    return CallOutcome::Return(MakeDict({{"success", PyValue::Bool(true)}}));
  }
  return CallOutcome::Return(MakeDict({{"success", PyValue::Bool(false)}}));
}

CallOutcome TicketApi::GetUserTickets(const std::vector<PyValue>& a) {
  const PyValue& status = a[0];
  if (!current_user_.Truthy()) {
    return CallOutcome::Return(
        PyValue::List({ErrorDict("User not authenticated. Please log in to view tickets.")}));
  }
  absl::StatusOr<PyList> queue = social::PyIterate(ticket_queue_);
  if (!queue.ok()) return RaiseFrom(queue.status());
  PyList mine;
  for (PyValue& ticket : *queue) {
    absl::StatusOr<PyValue*> created_by = social::PyGetItem(ticket, "created_by");
    if (!created_by.ok()) return RaiseFrom(created_by.status());
    if (**created_by == current_user_) mine.push_back(ticket);
  }
  if (status.Truthy()) {
    PyList filtered;
    for (PyValue& ticket : mine) {
      absl::StatusOr<PyValue*> ticket_status = social::PyGetItem(ticket, "status");
      if (!ticket_status.ok()) return RaiseFrom(ticket_status.status());
      absl::StatusOr<std::string> lhs = social::PyLowerOf(**ticket_status);
      if (!lhs.ok()) return RaiseFrom(lhs.status());
      absl::StatusOr<std::string> rhs = social::PyLowerOf(status);
      if (!rhs.ok()) return RaiseFrom(rhs.status());
      if (*lhs == *rhs) filtered.push_back(ticket);
    }
    mine = std::move(filtered);
  }
  return CallOutcome::Return(PyValue::List(std::move(mine)));
}

std::unique_ptr<ToolApi> NewTicketApi() { return std::make_unique<TicketApi>(); }

}  // namespace envtune
