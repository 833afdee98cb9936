// MessageAPI: BFCL's workspace messaging sandbox (users, inbox, login, search), byte-exact with
// BFCL's Python backend (../shared/bfcl/spec/message_api.md).
//
// State keeps Python types exactly as loaded from the scenario (user_map/inbox are used as-is);
// message ids come from a per-instance CPython random.Random(random_seed or 200191), so ids depend
// only on how many messages this instance sent. Wrong argument types never crash: they give the
// exception text Python would raise. Hostile-input limits (social_pyops.h): a message or contact
// name larger than 16 KiB, or an inbox / user map of 1000 entries, is refused with
// {"error": ...}. Not affected by augmentation (METHOD.md §5: MessageAPI is unchanged).
#ifndef ENVTUNE_ENVSERVER_APIS_MESSAGE_API_H_
#define ENVTUNE_ENVSERVER_APIS_MESSAGE_API_H_

#include <string_view>
#include <vector>

#include "envserver/py_random.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {

class MessageApi : public ToolApiBase<MessageApi> {
 public:
  MessageApi();  // loaded with the default scenario ({})

  std::string_view ClassName() const override { return "MessageAPI"; }
  void LoadScenario(const PyValue& scenario, bool long_context) override;
  // {generated_ids (set), user_count, user_map, inbox, message_count, current_user}.
  PyValue PublicState() const override;

  static const MethodTable& Methods();

  // One handler per BFCL method, in Python definition order; `a` holds the bound arguments.
  CallOutcome ListUsers(const std::vector<PyValue>& a);
  CallOutcome GetUserId(const std::vector<PyValue>& a);
  CallOutcome MessageLogin(const std::vector<PyValue>& a);
  CallOutcome MessageGetLoginStatus(const std::vector<PyValue>& a);
  CallOutcome SendMessage(const std::vector<PyValue>& a);
  CallOutcome DeleteMessage(const std::vector<PyValue>& a);
  CallOutcome ViewMessagesSent(const std::vector<PyValue>& a);
  CallOutcome AddContact(const std::vector<PyValue>& a);
  CallOutcome SearchMessages(const std::vector<PyValue>& a);
  CallOutcome GetMessageStats(const std::vector<PyValue>& a);

 private:
  PyRandom random_{200191};
  PyValue generated_ids_;
  PyValue user_count_;
  PyValue user_map_;
  PyValue inbox_;
  PyValue message_count_;
  PyValue current_user_;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_MESSAGE_API_H_
