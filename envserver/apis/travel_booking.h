// BFCL's TravelAPI sandbox (travel_booking.py), byte-exact with BFCL: every result, error text
// and public state as ../shared/bfcl/spec/travel_booking.md describes, including Python's
// behaviour on wrongly typed arguments (the exception text, never a crash). Ids come from a
// private CPython-exact random.Random(141053). Long-context extension cards/bookings are built in
// (fresh copies per load, original key order), so they need no constants file.
//
// Decisions where BFCL is not reproducible or leaks (documented, see SPEC.md):
// * "today" for the age check is SandboxContext::today_{year,month,day} (fixed default
//   2024-09-01), not the wall clock.
// * The invalid-travel-class message prints the Python set sorted: {'business', 'economy',
// 'first'}.
// * Hostile-input limits: at most kMaxCards cards and kMaxBookings bookings; exceeding one
//   returns an error result in BFCL's shape and changes nothing.
//
// Augmentation (METHOD.md §5.2, SandboxContext::augment): get_flight_cost's "no route" exception
// and compute_exchange_rate's "no rate" exception carry actionable hints (kHint* below; still
// exceptions, state untouched). With augment off the texts are BFCL's.
#ifndef ENVTUNE_ENVSERVER_APIS_TRAVEL_BOOKING_H_
#define ENVTUNE_ENVSERVER_APIS_TRAVEL_BOOKING_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "envserver/py_random.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {

// Augmented hint templates ({from}, {to}, {base}, {target} are replaced by str() of the argument).
inline constexpr std::string_view kHintBothAirportsInvalid =
    "No available route for the given airports: neither the departure code '{from}' nor the "
    "destination code '{to}' is a valid airport code. Call list_all_airports to see the valid "
    "codes, or get_nearest_airport_by_city to get the code for a city.";
inline constexpr std::string_view kHintDepartureInvalid =
    "No available route for the given airports: the departure code '{from}' is not a valid "
    "airport code. Call list_all_airports to see the valid codes, or get_nearest_airport_by_city "
    "to get the code for a city.";
inline constexpr std::string_view kHintDestinationInvalid =
    "No available route for the given airports: the destination code '{to}' is not a valid "
    "airport code. Call list_all_airports to see the valid codes, or get_nearest_airport_by_city "
    "to get the code for a city.";
inline constexpr std::string_view kHintNoRoute =
    "No available route from {from} to {to}: both airport codes are valid, but there is no flight "
    "from {from} to {to}.";
inline constexpr std::string_view kHintNoExchangeRate =
    "No available exchange rate from {base} to {target}. Supported currency codes are USD, RMB, "
    "EUR, JPY, GBP, CAD, AUD, INR, RUB, BRL, MXN, and rates exist only between USD and one of the "
    "others. Please check the currency codes.";

class TravelApi : public ToolApiBase<TravelApi> {
 public:
  static constexpr size_t kMaxCards = 10000;
  static constexpr size_t kMaxBookings = 10000;

  TravelApi();

  static const MethodTable& Methods();
  std::string_view ClassName() const override { return "TravelAPI"; }
  void LoadScenario(const PyValue& scenario, bool long_context) override;
  PyValue PublicState() const override;

  CallOutcome AuthenticateTravel(const std::vector<PyValue>& a);
  CallOutcome TravelGetLoginStatus(const std::vector<PyValue>& a);
  CallOutcome GetBudgetFiscalYear(const std::vector<PyValue>& a);
  CallOutcome RegisterCreditCard(const std::vector<PyValue>& a);
  CallOutcome GetFlightCost(const std::vector<PyValue>& a);
  CallOutcome GetCreditCardBalance(const std::vector<PyValue>& a);
  CallOutcome BookFlight(const std::vector<PyValue>& a);
  CallOutcome RetrieveInvoice(const std::vector<PyValue>& a);
  CallOutcome GetBookingHistory(const std::vector<PyValue>& a);
  CallOutcome ListAllAirports(const std::vector<PyValue>& a);
  CallOutcome CancelBooking(const std::vector<PyValue>& a);
  CallOutcome ComputeExchangeRate(const std::vector<PyValue>& a);
  CallOutcome VerifyTravelerInformation(const std::vector<PyValue>& a);
  CallOutcome SetBudgetLimit(const std::vector<PyValue>& a);
  CallOutcome GetNearestAirportByCity(const std::vector<PyValue>& a);
  CallOutcome PurchaseInsurance(const std::vector<PyValue>& a);
  CallOutcome ContactCustomerSupport(const std::vector<PyValue>& a);
  CallOutcome GetAllCreditCards(const std::vector<PyValue>& a);

 private:
  bool TokenExpired() const;  // token_expires_in == 0 (Python ==)
  // The first failing check of a method's access token: "Token expired", then "Invalid access
  // token" when `token` != access_token (Python !=); nullptr when both pass.
  const char* TokenError(const PyValue& token) const;

  PyValue credit_card_list_;
  PyValue booking_record_;
  PyValue access_token_;
  PyValue token_type_;
  PyValue token_expires_in_;
  PyValue token_scope_;
  PyValue user_first_name_;
  PyValue user_last_name_;
  PyValue budget_limit_;
  bool long_context_ = false;
  PyRandom random_;
  std::map<std::string, double> flight_cost_lookup_;  // _flight_cost_lookup: key -> cost
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_TRAVEL_BOOKING_H_
