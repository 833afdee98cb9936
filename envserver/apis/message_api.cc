#include "envserver/apis/message_api.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "envserver/apis/apis.h"
#include "envserver/apis/social_pyops.h"

namespace envtune {
namespace {

using social::ErrorDict;
using social::MakeDict;
using social::RaiseFrom;

constexpr int64_t kDefaultSeed = 200191;
constexpr char kNotLoggedIn[] = "No user is currently logged in.";

PyValue DefaultUserMap() {
  return MakeDict({{"Alice", PyValue::Str("USR001")},
                   {"Bob", PyValue::Str("USR002")},
                   {"Catherine", PyValue::Str("USR003")},
                   {"Daniel", PyValue::Str("USR004")}});
}

PyValue DefaultInbox() {
  return PyValue::List(
      {MakeDict({{"USR002", PyValue::Str("My name is Alice. I want to connect.")}}),
       MakeDict({{"USR003", PyValue::Str("Could you upload the file?")}}),
       MakeDict({{"USR004", PyValue::Str("Could you upload the file?")}})});
}

// `user_map.values()` as a list (AttributeError for a non-dict user_map).
absl::StatusOr<PyList> DictValues(const PyValue& d) {
  if (!d.is_dict()) return social::AttributeError(d, "values");
  PyList values;
  for (const auto& [key, value] : d.dict()) values.push_back(value);
  return values;
}

bool ListContains(const PyList& list, const PyValue& item) {
  for (const PyValue& x : list) {
    if (x == item) return true;
  }
  return false;
}

// `for message in self.inbox[::-1]`: the reversed elements.
absl::StatusOr<PyList> ReversedSlice(const PyValue& v) {
  switch (v.type()) {
    case PyValue::Type::kList:
    case PyValue::Type::kTuple:
    case PyValue::Type::kStr: {
      absl::StatusOr<PyList> items = social::PyIterate(v);
      if (!items.ok()) return items.status();
      return PyList(items->rbegin(), items->rend());
    }
    case PyValue::Type::kDict:
      return social::PyError("unhashable type: 'slice'");
    default:
      return social::PyError(
          absl::StrCat("'", std::string(v.TypeName()), "' object is not subscriptable"));
  }
}

ParamSpec Req(const char* name) { return ParamSpec{name, std::nullopt}; }

}  // namespace

MessageApi::MessageApi() { LoadScenario(PyValue::Dict(), false); }

const MessageApi::MethodTable& MessageApi::Methods() {
  static const auto* table = new MethodTable{
      {"list_users", {}, &MessageApi::ListUsers},
      {"get_user_id", {Req("user")}, &MessageApi::GetUserId},
      {"message_login", {Req("user_id")}, &MessageApi::MessageLogin},
      {"message_get_login_status", {}, &MessageApi::MessageGetLoginStatus},
      {"send_message", {Req("receiver_id"), Req("message")}, &MessageApi::SendMessage},
      {"delete_message", {Req("receiver_id")}, &MessageApi::DeleteMessage},
      {"view_messages_sent", {}, &MessageApi::ViewMessagesSent},
      {"add_contact", {Req("user_name")}, &MessageApi::AddContact},
      {"search_messages", {Req("keyword")}, &MessageApi::SearchMessages},
      {"get_message_stats", {}, &MessageApi::GetMessageStats},
  };
  return *table;
}

void MessageApi::LoadScenario(const PyValue& scenario, bool /*long_context*/) {
  static const PyDict* kEmpty = new PyDict();
  const PyDict& s = scenario.is_dict() ? scenario.dict() : *kEmpty;
  auto get = [&s](std::string_view key, PyValue fallback) {
    const PyValue* v = s.Find(key);
    return v != nullptr ? *v : fallback;
  };
  // random.Random(seed): ints (and bools) seed as CPython does; a non-int seed (absent from
  // BFCL's data) falls back to the default seed.
  PyValue seed = get("random_seed", PyValue::Int(kDefaultSeed));
  PyBigInt seed_int(kDefaultSeed);
  if (seed.is_int() || seed.is_bool()) {
    seed_int = seed.as_big_int();
  } else if (seed.is_float() &&
             seed.as_float() == static_cast<double>(static_cast<int64_t>(seed.as_float()))) {
    seed_int = PyBigInt(static_cast<int64_t>(seed.as_float()));  // hash(2.0) == 2
  }
  random_ = PyRandom(seed_int);
  generated_ids_ = get("generated_ids", PyValue::Set());
  user_count_ = get("user_count", PyValue::Int(4));
  user_map_ = get("user_map", DefaultUserMap());
  inbox_ = get("inbox", DefaultInbox());
  message_count_ = get("message_count", PyValue::Int(3));
  current_user_ = get("current_user", PyValue::None());
}

PyValue MessageApi::PublicState() const {
  return MakeDict({{"generated_ids", generated_ids_},
                   {"user_count", user_count_},
                   {"user_map", user_map_},
                   {"inbox", inbox_},
                   {"message_count", message_count_},
                   {"current_user", current_user_}});
}

CallOutcome MessageApi::ListUsers(const std::vector<PyValue>& /*a*/) {
  if (!user_map_.is_dict()) return RaiseFrom(social::AttributeError(user_map_, "keys"));
  PyList keys;
  for (const auto& [key, value] : user_map_.dict()) keys.push_back(key);
  return CallOutcome::Return(MakeDict({{"user_list", PyValue::List(std::move(keys))}}));
}

CallOutcome MessageApi::GetUserId(const std::vector<PyValue>& a) {
  const PyValue& user = a[0];
  absl::StatusOr<bool> found = social::PyContains(user_map_, user);
  if (!found.ok()) return RaiseFrom(found.status());
  if (!*found) {
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("User '", user.Str(), "' not found in the workspace.")));
  }
  if (!user_map_.is_dict()) return RaiseFrom(social::AttributeError(user_map_, "get"));
  return CallOutcome::Return(MakeDict({{"user_id", *user_map_.dict().Find(user)}}));
}

CallOutcome MessageApi::MessageLogin(const std::vector<PyValue>& a) {
  const PyValue& user_id = a[0];
  absl::StatusOr<PyList> ids = DictValues(user_map_);
  if (!ids.ok()) return RaiseFrom(ids.status());
  if (!ListContains(*ids, user_id)) {
    return CallOutcome::Return(MakeDict(
        {{"login_status", PyValue::Bool(false)},
         {"message", PyValue::Str(absl::StrCat("User ID '", user_id.Str(), "' not found."))}}));
  }
  current_user_ = user_id;
  return CallOutcome::Return(MakeDict(
      {{"login_status", PyValue::Bool(true)},
       {"message",
        PyValue::Str(absl::StrCat("User '", user_id.Str(), "' logged in successfully."))}}));
}

CallOutcome MessageApi::MessageGetLoginStatus(const std::vector<PyValue>& /*a*/) {
  return CallOutcome::Return(MakeDict({{"login_status", PyValue::Bool(current_user_.Truthy())}}));
}

CallOutcome MessageApi::SendMessage(const std::vector<PyValue>& a) {
  const PyValue& receiver_id = a[0];
  const PyValue& message = a[1];
  if (!current_user_.Truthy()) return CallOutcome::Return(ErrorDict(kNotLoggedIn));
  absl::StatusOr<PyList> ids = DictValues(user_map_);
  if (!ids.ok()) return RaiseFrom(ids.status());
  if (!ListContains(*ids, receiver_id)) {
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("Receiver ID '", receiver_id.Str(), "' not found.")));
  }
  // Hostile-input limits (before any state change or random draw).
  if (social::ApproxSize(message) > social::kMaxStoredValueBytes) {
    return CallOutcome::Return(ErrorDict(social::TooLargeText("Message")));
  }
  if (inbox_.is_list() && inbox_.items().size() >= social::kMaxCollectionEntries) {
    return CallOutcome::Return(ErrorDict(social::TooManyText("messages in the inbox")));
  }
  // _generate_id(): draw until the id is not in generated_ids, then generated_ids.add(id).
  int64_t new_id = 0;
  for (int attempt = 0;; ++attempt) {
    // Python would loop forever once all 90000 ids are taken; only a hostile scenario can do that.
    if (attempt == 1000000) return CallOutcome::Return(ErrorDict("No message id available."));
    new_id = random_.RandInt(10000, 99999);
    absl::StatusOr<bool> seen = social::PyContains(generated_ids_, PyValue::Int(new_id));
    if (!seen.ok()) return RaiseFrom(seen.status());
    if (!*seen) break;
  }
  if (!generated_ids_.is_set()) return RaiseFrom(social::AttributeError(generated_ids_, "add"));
  generated_ids_.items().push_back(PyValue::Int(new_id));
  // self.inbox.append({receiver_id: message}); self.message_count += 1
  PyDict entry;
  entry.Set(receiver_id, message);
  absl::Status appended = social::PyAppend(inbox_, PyValue::Dict(std::move(entry)));
  if (!appended.ok()) return RaiseFrom(appended);
  absl::Status counted = social::PyIncrement(message_count_);
  if (!counted.ok()) return RaiseFrom(counted);
  return CallOutcome::Return(MakeDict(
      {{"sent_status", PyValue::Bool(true)},
       {"message_id", MakeDict({{"new_id", PyValue::Int(new_id)}})},
       {"message",
        PyValue::Str(absl::StrCat("Message sent to '", receiver_id.Str(), "' successfully."))}}));
}

CallOutcome MessageApi::DeleteMessage(const std::vector<PyValue>& a) {
  const PyValue& receiver_id = a[0];
  if (!current_user_.Truthy()) return CallOutcome::Return(ErrorDict(kNotLoggedIn));
  absl::StatusOr<PyList> reversed = ReversedSlice(inbox_);
  if (!reversed.ok()) return RaiseFrom(reversed.status());
  for (const PyValue& message : *reversed) {
    absl::StatusOr<std::pair<PyValue, PyValue>> first = social::PyFirstItem(message);
    if (!first.ok()) return RaiseFrom(first.status());
    if (first->first != receiver_id) continue;
    // self.inbox.remove(message): the first entry equal by value.
    if (!inbox_.is_list()) return RaiseFrom(social::AttributeError(inbox_, "remove"));
    PyList& items = inbox_.items();
    for (auto it = items.begin(); it != items.end(); ++it) {
      if (*it == message) {
        items.erase(it);
        break;
      }
    }
    return CallOutcome::Return(MakeDict(
        {{"deleted_status", PyValue::Bool(true)},
         {"receiver_id", first->first},
         {"message", PyValue::Str(absl::StrCat("Receiver ", receiver_id.Str(),
                                               "'s latest message deleted successfully."))}}));
  }
  return CallOutcome::Return(
      ErrorDict(absl::StrCat("Receiver ID ", receiver_id.Str(), " not found.")));
}

CallOutcome MessageApi::ViewMessagesSent(const std::vector<PyValue>& /*a*/) {
  if (!current_user_.Truthy()) return CallOutcome::Return(ErrorDict(kNotLoggedIn));
  absl::StatusOr<PyList> inbox = social::PyIterate(inbox_);
  if (!inbox.ok()) return RaiseFrom(inbox.status());
  PyDict sent;
  for (const PyValue& message : *inbox) {
    absl::StatusOr<std::pair<PyValue, PyValue>> first = social::PyFirstItem(message);
    if (!first.ok()) return RaiseFrom(first.status());
    PyValue* list = sent.Find(first->first);
    if (list == nullptr) {
      sent.Set(first->first, PyValue::List({first->second}));
    } else {
      list->items().push_back(first->second);
    }
  }
  return CallOutcome::Return(MakeDict({{"messages", PyValue::Dict(std::move(sent))}}));
}

CallOutcome MessageApi::AddContact(const std::vector<PyValue>& a) {
  const PyValue& user_name = a[0];
  absl::StatusOr<bool> exists = social::PyContains(user_map_, user_name);
  if (!exists.ok()) return RaiseFrom(exists.status());
  if (*exists) {
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("User name '", user_name.Str(), "' already exists.")));
  }
  // Hostile-input limits (before any state change).
  if (social::ApproxSize(user_name) > social::kMaxStoredValueBytes) {
    return CallOutcome::Return(ErrorDict(social::TooLargeText("User name")));
  }
  if (user_map_.is_dict() && user_map_.dict().size() >= social::kMaxCollectionEntries) {
    return CallOutcome::Return(ErrorDict(social::TooManyText("contacts")));
  }
  absl::Status counted = social::PyIncrement(user_count_);
  if (!counted.ok()) return RaiseFrom(counted);
  std::string user_id = absl::StrCat("USR", social::PyZfill(user_count_.Str(), 3));
  absl::StatusOr<PyList> ids = DictValues(user_map_);
  if (!ids.ok()) return RaiseFrom(ids.status());
  if (ListContains(*ids, PyValue::Str(user_id))) {
    return CallOutcome::Return(ErrorDict(absl::StrCat("User ID '", user_id, "' already exists.")));
  }
  user_map_.dict().Set(user_name, PyValue::Str(user_id));
  return CallOutcome::Return(MakeDict(
      {{"added_status", PyValue::Bool(true)},
       {"user_id", PyValue::Str(user_id)},
       {"message",
        PyValue::Str(absl::StrCat("Contact '", user_name.Str(), "' added successfully."))}}));
}

CallOutcome MessageApi::SearchMessages(const std::vector<PyValue>& a) {
  const PyValue& keyword = a[0];
  if (!current_user_.Truthy()) return CallOutcome::Return(ErrorDict(kNotLoggedIn));
  absl::StatusOr<std::string> keyword_lower = social::PyLowerOf(keyword);
  if (!keyword_lower.ok()) return RaiseFrom(keyword_lower.status());
  absl::StatusOr<PyList> inbox = social::PyIterate(inbox_);
  if (!inbox.ok()) return RaiseFrom(inbox.status());
  PyList results;
  for (const PyValue& message : *inbox) {
    absl::StatusOr<std::pair<PyValue, PyValue>> first = social::PyFirstItem(message);
    if (!first.ok()) return RaiseFrom(first.status());
    absl::StatusOr<std::string> content_lower = social::PyLowerOf(first->second);
    if (!content_lower.ok()) return RaiseFrom(content_lower.status());
    if (content_lower->find(*keyword_lower) != std::string::npos) {
      results.push_back(MakeDict({{"receiver_id", first->first}, {"message", first->second}}));
    }
  }
  return CallOutcome::Return(MakeDict({{"results", PyValue::List(std::move(results))}}));
}

CallOutcome MessageApi::GetMessageStats(const std::vector<PyValue>& /*a*/) {
  if (!current_user_.Truthy()) return CallOutcome::Return(ErrorDict(kNotLoggedIn));
  absl::StatusOr<PyList> inbox = social::PyIterate(inbox_);
  if (!inbox.ok()) return RaiseFrom(inbox.status());
  int64_t received_count = 0;
  PyDict contacts;  // used as a set of receiver ids
  for (const PyValue& message : *inbox) {
    absl::StatusOr<std::pair<PyValue, PyValue>> first = social::PyFirstItem(message);
    if (!first.ok()) return RaiseFrom(first.status());
    ++received_count;
    contacts.Set(first->first, PyValue::None());
  }
  return CallOutcome::Return(MakeDict(
      {{"stats",
        MakeDict({{"received_count", PyValue::Int(received_count)},
                  {"total_contacts", PyValue::Int(static_cast<int64_t>(contacts.size()))}})}}));
}

std::unique_ptr<ToolApi> NewMessageApi() { return std::make_unique<MessageApi>(); }

}  // namespace envtune
