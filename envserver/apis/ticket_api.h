// TicketAPI: BFCL's support-ticket sandbox (login, create/get/close/resolve/edit tickets),
// byte-exact with BFCL's Python backend (../shared/bfcl/spec/ticket_api.md).
//
// Tickets are the scenario's dicts, kept with their own keys and key order and modified in place.
// Python's `', '.join(set)` in edit_ticket's "Invalid fields for update" message has a
// per-process order; this implementation sorts the str fields (code point order), non-str keys
// last in call order. Wrong argument types never crash: they give Python's exception text.
// Hostile-input limits (social_pyops.h): ticket text (title+description, resolution, updates,
// user name) over 16 KiB, or a queue of 1000 tickets, is refused with {"error": ...}.
// Not affected by augmentation (METHOD.md §5: TicketAPI is unchanged).
#ifndef ENVTUNE_ENVSERVER_APIS_TICKET_API_H_
#define ENVTUNE_ENVSERVER_APIS_TICKET_API_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {

class TicketApi : public ToolApiBase<TicketApi> {
 public:
  TicketApi();  // loaded with the default scenario ({})

  std::string_view ClassName() const override { return "TicketAPI"; }
  void LoadScenario(const PyValue& scenario, bool long_context) override;
  // {ticket_queue, ticket_counter, current_user}.
  PyValue PublicState() const override;

  static const MethodTable& Methods();

  // One handler per BFCL method, in Python definition order; `a` holds the bound arguments.
  CallOutcome CreateTicket(const std::vector<PyValue>& a);
  CallOutcome GetTicket(const std::vector<PyValue>& a);
  CallOutcome CloseTicket(const std::vector<PyValue>& a);
  CallOutcome ResolveTicket(const std::vector<PyValue>& a);
  CallOutcome EditTicket(const std::vector<PyValue>& a);
  CallOutcome TicketLogin(const std::vector<PyValue>& a);
  CallOutcome TicketGetLoginStatus(const std::vector<PyValue>& a);
  CallOutcome Logout(const std::vector<PyValue>& a);
  CallOutcome GetUserTickets(const std::vector<PyValue>& a);

 private:
  // _find_ticket: the first ticket whose "id" == ticket_id (nullptr: none), or the KeyError /
  // TypeError a malformed ticket raises.
  absl::StatusOr<PyValue*> FindTicket(const PyValue& ticket_id);

  PyValue ticket_queue_;
  PyValue ticket_counter_;
  PyValue current_user_;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_TICKET_API_H_
