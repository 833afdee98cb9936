// TravelAPI (BFCL travel_booking.py). See travel_booking.h and
// ../shared/bfcl/spec/travel_booking.md; section numbers below refer to that spec.
#include "envserver/apis/travel_booking.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "envserver/apis/apis.h"
#include "envserver/apis/trading_bot.h"  // pysem helpers

namespace envtune {
namespace {

using pysem::MakeDict;

CallOutcome RaiseStatus(const absl::Status& status) {
  return CallOutcome::Raise(std::string(status.message()));
}

PyValue Str(std::string s) { return PyValue::Str(std::move(s)); }

PyValue ErrorDict(std::string message) { return MakeDict({{"error", Str(std::move(message))}}); }

// An error result whose first key is `status_key` (false), then "error".
PyValue StatusError(std::string_view status_key, std::string message) {
  return MakeDict({{status_key, PyValue::Bool(false)}, {"error", Str(std::move(message))}});
}

constexpr int64_t kRandomSeed = 141053;

ParamSpec Req(const char* name) { return ParamSpec{name, std::nullopt}; }
ParamSpec OptNone(const char* name) { return ParamSpec{name, PyValue::None()}; }

struct Route {
  const char* from;
  const char* to;
  int base;
};
// §5, in Python dict order.
constexpr Route kRoutes[] = {
    {"SFO", "LAX", 200}, {"SFO", "JFK", 500}, {"SFO", "ORD", 400}, {"SFO", "BOS", 450},
    {"SFO", "RMS", 300}, {"SFO", "SBK", 350}, {"SFO", "MPC", 370}, {"SFO", "SVP", 320},
    {"SFO", "SHD", 330}, {"SFO", "SSV", 340}, {"SFO", "OKD", 360}, {"SFO", "WLB", 310},
    {"SFO", "CRH", 380}, {"SFO", "ATV", 390}, {"SFO", "PHV", 420}, {"SFO", "GFD", 430},
    {"SFO", "CIA", 700}, {"LAX", "SFO", 100}, {"LAX", "JFK", 600}, {"LAX", "ORD", 500},
    {"LAX", "BOS", 550}, {"LAX", "RMS", 310}, {"LAX", "SBK", 320}, {"LAX", "MPC", 330},
    {"LAX", "SVP", 340}, {"LAX", "SHD", 350}, {"LAX", "SSV", 360}, {"LAX", "OKD", 370},
    {"LAX", "WLB", 380}, {"LAX", "CRH", 390}, {"LAX", "ATV", 400}, {"LAX", "PHV", 410},
    {"LAX", "GFD", 420}, {"LAX", "HND", 430}, {"JFK", "ORD", 300}, {"JFK", "BOS", 250},
    {"JFK", "RMS", 450}, {"JFK", "SBK", 460}, {"JFK", "MPC", 470}, {"JFK", "SVP", 480},
    {"JFK", "SHD", 490}, {"JFK", "SSV", 500}, {"JFK", "OKD", 510}, {"JFK", "WLB", 520},
    {"JFK", "CRH", 530}, {"JFK", "ATV", 540}, {"JFK", "PHV", 550}, {"JFK", "GFD", 560},
    {"JFK", "LAX", 570}, {"JFK", "HND", 800}, {"JFK", "PVG", 950}, {"JFK", "PEK", 1000},
    {"ORD", "LAX", 180}, {"ORD", "BOS", 200}, {"ORD", "RMS", 350}, {"ORD", "SBK", 360},
    {"ORD", "MPC", 370}, {"ORD", "SVP", 380}, {"ORD", "SHD", 390}, {"ORD", "SSV", 400},
    {"ORD", "OKD", 410}, {"ORD", "WLB", 420}, {"ORD", "CRH", 430}, {"ORD", "ATV", 440},
    {"ORD", "PHV", 450}, {"ORD", "GFD", 460}, {"BOS", "RMS", 400}, {"BOS", "SBK", 410},
    {"BOS", "MPC", 420}, {"BOS", "SVP", 430}, {"BOS", "SHD", 440}, {"BOS", "SSV", 450},
    {"BOS", "OKD", 460}, {"BOS", "WLB", 470}, {"BOS", "CRH", 480}, {"BOS", "ATV", 490},
    {"BOS", "PHV", 500}, {"BOS", "GFD", 510}, {"RMS", "BOS", 200}, {"RMS", "JFK", 210},
    {"RMS", "SBK", 220}, {"RMS", "MPC", 230}, {"RMS", "SVP", 240}, {"RMS", "SHD", 250},
    {"RMS", "SSV", 260}, {"RMS", "OKD", 270}, {"RMS", "WLB", 280}, {"RMS", "CRH", 290},
    {"RMS", "ATV", 300}, {"RMS", "PHV", 310}, {"RMS", "GFD", 320}, {"RMS", "LAX", 330},
    {"SBK", "MPC", 200}, {"SBK", "SVP", 210}, {"SBK", "SHD", 220}, {"SBK", "SSV", 230},
    {"SBK", "OKD", 240}, {"SBK", "WLB", 250}, {"SBK", "CRH", 260}, {"SBK", "ATV", 270},
    {"SBK", "PHV", 280}, {"SBK", "GFD", 290}, {"MPC", "SVP", 210}, {"MPC", "SHD", 220},
    {"MPC", "SSV", 230}, {"MPC", "OKD", 240}, {"MPC", "WLB", 250}, {"MPC", "CRH", 260},
    {"MPC", "ATV", 270}, {"MPC", "PHV", 280}, {"MPC", "GFD", 290}, {"SVP", "SHD", 230},
    {"SVP", "SSV", 240}, {"SVP", "OKD", 250}, {"SVP", "WLB", 260}, {"SVP", "CRH", 270},
    {"SVP", "ATV", 280}, {"SVP", "PHV", 290}, {"SVP", "GFD", 300}, {"SHD", "SSV", 220},
    {"SHD", "OKD", 230}, {"SHD", "WLB", 240}, {"SHD", "CRH", 250}, {"SHD", "ATV", 260},
    {"SHD", "PHV", 270}, {"SHD", "GFD", 280}, {"SSV", "OKD", 240}, {"SSV", "WLB", 250},
    {"SSV", "CRH", 260}, {"SSV", "ATV", 270}, {"SSV", "PHV", 280}, {"SSV", "GFD", 290},
    {"OKD", "WLB", 230}, {"OKD", "CRH", 240}, {"OKD", "ATV", 250}, {"OKD", "PHV", 260},
    {"OKD", "GFD", 270}, {"WLB", "CRH", 250}, {"WLB", "ATV", 260}, {"WLB", "PHV", 270},
    {"WLB", "GFD", 280}, {"CRH", "ATV", 240}, {"CRH", "PHV", 250}, {"CRH", "GFD", 260},
    {"CRH", "SFO", 270}, {"CRH", "RMS", 280}, {"CRH", "HKG", 290}, {"CRH", "JFK", 300},
    {"ATV", "PHV", 230}, {"ATV", "GFD", 240}, {"PHV", "GFD", 220}, {"LHR", "CDG", 100},
    {"OKD", "LAX", 220},
};

// §4.10, in order.
constexpr const char* kAirports[] = {"RMS", "SBK", "MPC", "SVP", "SHD", "CDG", "LHR", "SSV",
                                     "OKD", "WLB", "PEK", "HND", "HKG", "CIA", "CRH", "ATV",
                                     "PHV", "GFD", "SFO", "LAX", "JFK", "ORD", "BOS"};

// §4.15.
constexpr std::pair<const char*, const char*> kNearestAirport[] = {
    {"Rivermist", "RMS"},   {"Stonebrook", "SBK"},      {"Maplecrest", "MPC"},
    {"Silverpine", "SVP"},  {"Shadowridge", "SHD"},     {"London", "LHR"},
    {"Paris", "CDG"},       {"Sunset Valley", "SSV"},   {"Oakendale", "OKD"},
    {"Willowbend", "WLB"},  {"Crescent Hollow", "CRH"}, {"Autumnville", "ATV"},
    {"Pinehaven", "PHV"},   {"Greenfield", "GFD"},      {"San Francisco", "SFO"},
    {"Los Angeles", "LAX"}, {"New York", "JFK"},        {"Chicago", "ORD"},
    {"Boston", "BOS"},      {"Beijing", "PEK"},         {"Hong Kong", "HKG"},
    {"Rome", "CIA"},        {"Tokyo", "HND"},
};

// §4.12: USD -> X rates; ints stay Python ints.
struct Rate {
  const char* to;
  bool is_int;
  double rate;
};
constexpr Rate kRates[] = {{"RMB", true, 7},    {"EUR", false, 0.8}, {"JPY", true, 110},
                           {"GBP", false, 0.7}, {"CAD", false, 1.3}, {"AUD", false, 1.4},
                           {"INR", true, 70},   {"RUB", true, 60},   {"BRL", false, 3.8},
                           {"MXN", true, 20}};

// §2: long-context extensions, original order.
struct ExtensionCard {
  const char* id;
  const char* number;
  const char* expiration;
  const char* holder;
  int cvv;
  double balance;
};
constexpr ExtensionCard kExtensionCards[] = {
    {"1234567812345678", "1234567812345678", "12/25", "John Doe", 123, 5000.0},
    {"2345678923456789", "2345678923456789", "11/24", "Jane Smith", 456, 7500.0},
    {"3456789034567890", "3456789034567890", "10/23", "Robert Johnson", 789, 6200.0},
    {"4567890145678901", "4567890145678901", "09/26", "Emily Davis", 321, 8200.0},
    {"9978997699789976", "9978997699789976", "01/30", "Cardholder 97", 697, 5850.0},
    {"9989997799899989", "9989997799899989", "02/30", "Cardholder 98", 698, 5900.0},
    {"9999997899999999", "9999997899999999", "03/30", "Cardholder 99", 699, 5950.0},
    {"1000000790000000", "1000000790000000", "04/30", "Cardholder 100", 700, 6000.0},
    {"1234567812345674", "1234567812345674", "12/25", "Johnyy Doe Stacks", 132, 5000.0},
    {"2345678923456784", "2345678923456784", "11/24", "Jane Hudson", 465, 7500.0},
    {"3456789034567894", "3456789034567894", "10/23", "Mitchell Johnson", 798, 6200.0},
    {"4567890145678904", "4567890145678904", "09/26", "Emilio Berkeley", 312, 8200.0},
    {"9978997699789974", "9978997699789974", "01/30", "Cardholder 397", 679, 5850.0},
    {"9989997799899984", "9989997799899984", "02/30", "Cardholder 098", 689, 5900.0},
    {"9999997899999994", "9999997899999994", "03/30", "Cardholder 499", 696, 5950.0},
    {"1000000790000004", "1000000790000004", "04/30", "Cardholder 4100", 712, 6000.0},
    {"1456789034567891", "1456789034567891", "10/23", "Roberto Johnson", 798, 6200.0},
    {"1567890145678901", "1567890145678901", "09/26", "Emily Daviston", 312, 8200.0},
    {"1978997699789971", "1978997699789971", "01/30", "Cardholder 697", 679, 5850.0},
    {"1989997799899981", "1989997799899981", "02/30", "Cardholder 598", 689, 5900.0},
    {"1999997899999991", "1999997899999991", "03/30", "Cardholder 499", 696, 5950.0},
    {"1000000790000001", "1000000790000004", "04/30", "Cardholder 2100", 712, 6000.0},
};

struct ExtensionBooking {
  const char* id;
  const char* card_id;
  const char* date;
  const char* from;
  const char* to;
  const char* travel_class;
  double cost;
  const char* transaction;
};
constexpr ExtensionBooking kExtensionBookings[] = {
    {"booking_901", "1234567812345678", "2024-05-21", "SFO", "JFK", "economy", 400.0, "trans_001"},
    {"booking_902", "2345678923456789", "2024-06-15", "LAX", "ORD", "business", 900.0, "trans_002"},
    {"booking_903", "3456789034567890", "2024-07-01", "BOS", "RMS", "first", 1500.0, "trans_003"},
    {"booking_904", "4567890145678901", "2024-08-21", "SFO", "ORD", "economy", 380.0, "trans_004"},
    {"booking_997", "9978997699789976", "2024-03-15", "MPC", "WLB", "business", 900.0, "trans_097"},
    {"booking_998", "9989997799899989", "2024-02-11", "SHD", "SVP", "economy", 450.0, "trans_098"},
    {"booking_999", "9999997899999999", "2024-01-23", "RMS", "SBK", "first", 2200.0, "trans_099"},
    {"booking_900", "1000000790000000", "2024-12-05", "SFO", "JFK", "business", 1300.0,
     "trans_100"},
    {"booking_401", "1234567812345678", "2024-05-21", "SFO", "JFK", "economy", 400.0, "trans_401"},
    {"booking_402", "2345678923456789", "2024-06-15", "LAX", "ORD", "business", 900.0, "trans_002"},
    {"booking_403", "3456789034567890", "2024-07-01", "BOS", "RMS", "first", 1500.0, "trans_403"},
    {"booking_404", "4567890145678901", "2024-08-21", "SFO", "ORD", "economy", 380.0, "trans_404"},
    {"booking_497", "9978997699789976", "2024-03-15", "MPC", "WLB", "business", 900.0, "trans_497"},
    {"booking_498", "9989997799899989", "2024-02-11", "SHD", "SVP", "economy", 450.0, "trans_498"},
    {"booking_499", "9999997899999999", "2024-01-23", "RMS", "SBK", "first", 2200.0, "trans_499"},
    {"booking_400", "1000000790000000", "2024-12-05", "SFO", "JFK", "business", 1300.0,
     "trans_400"},
};

PyValue FromScenario(const PyValue& scenario, std::string_view key, PyValue fallback) {
  if (scenario.is_dict()) {
    if (const PyValue* v = scenario.dict().Find(key)) return *v;
  }
  return fallback;
}

bool IsAirport(const PyValue& code) {
  if (!code.is_str()) return false;
  for (const char* a : kAirports) {
    if (code.as_str() == a) return true;
  }
  return false;
}

std::string FillHint(std::string_view hint,
                     std::initializer_list<std::pair<std::string_view, std::string>> values) {
  std::string out(hint);
  for (const auto& [k, v] : values) out = absl::StrReplaceAll(out, {{std::string(k), v}});
  return out;
}

// Parity of Python's sum(int(c) for c in travel_date if c.isdigit()).
absl::StatusOr<bool> DigitSumIsEven(const PyValue& travel_date) {
  absl::StatusOr<PyList> items = pysem::Iterate(travel_date);
  if (!items.ok()) return items.status();
  int parity = 0;
  for (const PyValue& item : *items) {
    if (!item.is_str()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", pysem::TypeName(item), "' object has no attribute 'isdigit'"));
    }
    if (pysem::IsAsciiDigits(item.as_str())) parity ^= (item.as_str().back() - '0') & 1;
  }
  return parity == 0;
}

}  // namespace

TravelApi::TravelApi() : random_(kRandomSeed) { LoadScenario(PyValue::Dict(), false); }

const TravelApi::MethodTable& TravelApi::Methods() {
  static const auto* table = new MethodTable{
      {"authenticate_travel",
       {Req("client_id"), Req("client_secret"), Req("refresh_token"), Req("grant_type"),
        Req("user_first_name"), Req("user_last_name")},
       &TravelApi::AuthenticateTravel},
      {"travel_get_login_status", {}, &TravelApi::TravelGetLoginStatus},
      {"get_budget_fiscal_year",
       {OptNone("lastModifiedAfter"), OptNone("includeRemoved")},
       &TravelApi::GetBudgetFiscalYear},
      {"register_credit_card",
       {Req("access_token"), Req("card_number"), Req("expiration_date"), Req("cardholder_name"),
        Req("card_verification_number")},
       &TravelApi::RegisterCreditCard},
      {"get_flight_cost",
       {Req("travel_from"), Req("travel_to"), Req("travel_date"), Req("travel_class")},
       &TravelApi::GetFlightCost},
      {"get_credit_card_balance",
       {Req("access_token"), Req("card_id")},
       &TravelApi::GetCreditCardBalance},
      {"book_flight",
       {Req("access_token"), Req("card_id"), Req("travel_date"), Req("travel_from"),
        Req("travel_to"), Req("travel_class")},
       &TravelApi::BookFlight},
      {"retrieve_invoice",
       {Req("access_token"), OptNone("booking_id"), OptNone("insurance_id")},
       &TravelApi::RetrieveInvoice},
      {"get_booking_history", {Req("access_token")}, &TravelApi::GetBookingHistory},
      {"list_all_airports", {}, &TravelApi::ListAllAirports},
      {"cancel_booking", {Req("access_token"), Req("booking_id")}, &TravelApi::CancelBooking},
      {"compute_exchange_rate",
       {Req("base_currency"), Req("target_currency"), Req("value")},
       &TravelApi::ComputeExchangeRate},
      {"verify_traveler_information",
       {Req("first_name"), Req("last_name"), Req("date_of_birth"), Req("passport_number")},
       &TravelApi::VerifyTravelerInformation},
      {"set_budget_limit", {Req("access_token"), Req("budget_limit")}, &TravelApi::SetBudgetLimit},
      {"get_nearest_airport_by_city", {Req("location")}, &TravelApi::GetNearestAirportByCity},
      {"purchase_insurance",
       {Req("access_token"), Req("insurance_type"), Req("booking_id"), Req("insurance_cost"),
        Req("card_id")},
       &TravelApi::PurchaseInsurance},
      {"contact_customer_support",
       {Req("booking_id"), Req("message")},
       &TravelApi::ContactCustomerSupport},
      {"get_all_credit_cards", {}, &TravelApi::GetAllCreditCards},
  };
  return *table;
}

void TravelApi::LoadScenario(const PyValue& scenario, bool long_context) {
  PyBigInt seed(kRandomSeed);
  PyValue seed_value = FromScenario(scenario, "random_seed", PyValue::Int(kRandomSeed));
  if (seed_value.is_int() || seed_value.is_bool()) seed = seed_value.as_big_int();
  random_ = PyRandom(seed);
  credit_card_list_ = FromScenario(scenario, "credit_card_list", PyValue::Dict());
  booking_record_ = FromScenario(scenario, "booking_record", PyValue::Dict());
  access_token_ = FromScenario(scenario, "access_token", PyValue::None());
  token_type_ = FromScenario(scenario, "token_type", PyValue::None());
  token_expires_in_ = FromScenario(scenario, "token_expires_in", PyValue::None());
  token_scope_ = FromScenario(scenario, "token_scope", PyValue::None());
  user_first_name_ = FromScenario(scenario, "user_first_name", PyValue::None());
  user_last_name_ = FromScenario(scenario, "user_last_name", PyValue::None());
  budget_limit_ = FromScenario(scenario, "budget_limit", PyValue::None());
  long_context_ = long_context;
  flight_cost_lookup_.clear();
  if (!long_context_) return;
  // Fresh copies per load (BFCL shares the module objects across tasks; see SPEC.md).
  if (credit_card_list_.is_dict()) {
    for (const ExtensionCard& c : kExtensionCards) {
      if (credit_card_list_.dict().Contains(c.id)) continue;
      credit_card_list_.dict().Set(c.id,
                                   MakeDict({{"card_number", Str(c.number)},
                                             {"expiration_date", Str(c.expiration)},
                                             {"cardholder_name", Str(c.holder)},
                                             {"card_verification_number", PyValue::Int(c.cvv)},
                                             {"balance", PyValue::Float(c.balance)}}));
    }
  }
  if (booking_record_.is_dict()) {
    for (const ExtensionBooking& b : kExtensionBookings) {
      if (booking_record_.dict().Contains(b.id)) continue;
      booking_record_.dict().Set(b.id, MakeDict({{"card_id", Str(b.card_id)},
                                                 {"travel_date", Str(b.date)},
                                                 {"travel_from", Str(b.from)},
                                                 {"travel_to", Str(b.to)},
                                                 {"travel_class", Str(b.travel_class)},
                                                 {"travel_cost", PyValue::Float(b.cost)},
                                                 {"transaction_id", Str(b.transaction)}}));
    }
  }
}

PyValue TravelApi::PublicState() const {
  return MakeDict({{"credit_card_list", credit_card_list_},
                   {"booking_record", booking_record_},
                   {"access_token", access_token_},
                   {"token_type", token_type_},
                   {"token_expires_in", token_expires_in_},
                   {"token_scope", token_scope_},
                   {"user_first_name", user_first_name_},
                   {"user_last_name", user_last_name_},
                   {"budget_limit", budget_limit_},
                   {"long_context", PyValue::Bool(long_context_)}});
}

bool TravelApi::TokenExpired() const { return token_expires_in_ == PyValue::Int(0); }

const char* TravelApi::TokenError(const PyValue& token) const {
  if (TokenExpired()) return "Token expired";
  if (token != access_token_) return "Invalid access token";
  return nullptr;
}

CallOutcome TravelApi::AuthenticateTravel(const std::vector<PyValue>& a) {
  const PyValue& grant_type = a[3];
  token_expires_in_ = PyValue::Int(2);
  access_token_ = Str(absl::StrCat(random_.RandInt(100000, 999999)));
  token_type_ = Str("Bearer");
  token_scope_ = grant_type;
  user_first_name_ = a[4];
  user_last_name_ = a[5];
  return CallOutcome::Return(MakeDict({{"expires_in", PyValue::Int(2)},
                                       {"access_token", access_token_},
                                       {"token_type", Str("Bearer")},
                                       {"scope", grant_type}}));
}

CallOutcome TravelApi::TravelGetLoginStatus(const std::vector<PyValue>&) {
  bool logged_out = token_expires_in_.is_none() || TokenExpired();
  return CallOutcome::Return(MakeDict({{"status", PyValue::Bool(!logged_out)}}));
}

CallOutcome TravelApi::GetBudgetFiscalYear(const std::vector<PyValue>&) {
  return CallOutcome::Return(MakeDict({{"budget_fiscal_year", Str("2018")}}));
}

CallOutcome TravelApi::RegisterCreditCard(const std::vector<PyValue>& a) {
  const PyValue& access_token = a[0];
  const PyValue& card_number = a[1];
  if (token_expires_in_.is_none()) return CallOutcome::Return(ErrorDict("Token not initialized"));
  if (const char* err = TokenError(access_token)) return CallOutcome::Return(ErrorDict(err));
  absl::StatusOr<bool> known = pysem::Contains(credit_card_list_, card_number);
  if (!known.ok()) return RaiseStatus(known.status());
  if (*known) return CallOutcome::Return(ErrorDict("Card already registered"));
  if (credit_card_list_.is_dict() && credit_card_list_.dict().size() >= kMaxCards) {
    return CallOutcome::Return(ErrorDict(
        absl::StrCat("Too many credit cards: at most ", kMaxCards, " cards can be registered.")));
  }
  std::string card_id = absl::StrCat(random_.RandInt(100000000000, 999999999999));
  PyValue card = MakeDict({{"card_number", card_number},
                           {"expiration_date", a[2]},
                           {"cardholder_name", a[3]},
                           {"card_verification_number", a[4]},
                           {"balance", PyValue::Int(random_.RandInt(10000, 99999))}});
  if (!credit_card_list_.is_dict()) {
    return CallOutcome::Raise(absl::StrCat("'", pysem::TypeName(credit_card_list_),
                                           "' object does not support item assignment"));
  }
  credit_card_list_.dict().Set(card_id, std::move(card));
  return CallOutcome::Return(MakeDict({{"card_id", Str(card_id)}}));
}

CallOutcome TravelApi::GetFlightCost(const std::vector<PyValue>& a) {
  const PyValue& from = a[0];
  const PyValue& to = a[1];
  const PyValue& date = a[2];
  const PyValue& travel_class = a[3];
  for (const PyValue* v : {&from, &to}) {
    if (auto err = pysem::UnhashableError(*v)) return CallOutcome::Raise(*err);
  }
  const Route* route = nullptr;
  if (from.is_str() && to.is_str()) {
    for (const Route& r : kRoutes) {
      if (from.as_str() == r.from && to.as_str() == r.to) {
        route = &r;
        break;
      }
    }
  }
  if (route == nullptr) {
    if (!augment()) return CallOutcome::Raise("No available route for the given airports.");
    bool from_ok = IsAirport(from), to_ok = IsAirport(to);
    std::string_view hint = !from_ok && !to_ok ? kHintBothAirportsInvalid
                            : !from_ok         ? kHintDepartureInvalid
                            : !to_ok           ? kHintDestinationInvalid
                                               : kHintNoRoute;
    return CallOutcome::Raise(FillHint(hint, {{"{from}", from.Str()}, {"{to}", to.Str()}}));
  }
  int factor = 0;
  if (travel_class == Str("economy")) {
    factor = 1;
  } else if (travel_class == Str("business")) {
    factor = 2;
  } else if (travel_class == Str("first")) {
    factor = 5;
  } else {
    return CallOutcome::Raise("Invalid travel class. Options are: economy, business, first.");
  }
  absl::StatusOr<bool> even = DigitSumIsEven(date);
  if (!even.ok()) return RaiseStatus(even.status());
  int multiplier = *even ? 2 : 1;
  std::string suffix = absl::StrCat("|", travel_class.Str(), "|", date.Str());
  PyList costs;
  flight_cost_lookup_.clear();
  if (long_context_) {
    for (const Route& r : kRoutes) {
      double cost = static_cast<double>(r.base * factor * multiplier);
      flight_cost_lookup_[absl::StrCat(r.from, "|", r.to, suffix)] = cost;
      costs.push_back(PyValue::Float(cost));
    }
  } else {
    double cost = static_cast<double>(route->base * factor * multiplier);
    flight_cost_lookup_[absl::StrCat(from.Str(), "|", to.Str(), suffix)] = cost;
    costs.push_back(PyValue::Float(cost));
  }
  return CallOutcome::Return(MakeDict({{"travel_cost_list", PyValue::List(std::move(costs))}}));
}

CallOutcome TravelApi::GetCreditCardBalance(const std::vector<PyValue>& a) {
  const PyValue& card_id = a[1];
  if (const char* err = TokenError(a[0])) return CallOutcome::Return(ErrorDict(err));
  absl::StatusOr<bool> known = pysem::Contains(credit_card_list_, card_id);
  if (!known.ok()) return RaiseStatus(known.status());
  if (!*known) {
    absl::StatusOr<PyList> ids = pysem::Iterate(credit_card_list_);
    if (!ids.ok()) return RaiseStatus(ids.status());
    return CallOutcome::Return(ErrorDict(absl::StrCat(
        "Card not registered. Here are a list of card_id's: ", PyValue::List(*ids).Repr())));
  }
  absl::StatusOr<const PyValue*> card = pysem::GetItem(credit_card_list_, card_id);
  if (!card.ok()) return RaiseStatus(card.status());
  absl::StatusOr<const PyValue*> balance = pysem::GetItem(**card, Str("balance"));
  if (!balance.ok()) return RaiseStatus(balance.status());
  return CallOutcome::Return(MakeDict({{"card_balance", **balance}}));
}

CallOutcome TravelApi::BookFlight(const std::vector<PyValue>& a) {
  const PyValue& card_id = a[1];
  const PyValue& date = a[2];
  const PyValue& from = a[3];
  const PyValue& to = a[4];
  const PyValue& travel_class = a[5];
  auto fail = [](std::string message) {
    return CallOutcome::Return(StatusError("booking_status", std::move(message)));
  };
  if (const char* err = TokenError(a[0])) return fail(err);
  absl::StatusOr<bool> known = pysem::Contains(credit_card_list_, card_id);
  if (!known.ok()) return RaiseStatus(known.status());
  if (!*known) return fail("Card not registered");
  absl::StatusOr<PyValue*> card = pysem::GetMutableItem(credit_card_list_, card_id);
  if (!card.ok()) return RaiseStatus(card.status());
  absl::StatusOr<bool> has_balance = pysem::Contains(**card, Str("balance"));
  if (!has_balance.ok()) return RaiseStatus(has_balance.status());
  if (!*has_balance) return fail("Balance not found");
  if (!IsAirport(from)) return fail(absl::StrCat("Invalid departure airport code: ", from.Str()));
  if (!IsAirport(to)) return fail(absl::StrCat("Invalid destination airport code: ", to.Str()));
  if (!date.is_str()) {
    return CallOutcome::Raise(
        absl::StrCat("strptime() argument 1 must be str, not ", pysem::TypeName(date)));
  }
  if (!pysem::Strptime(date, false).ok()) return fail("Invalid date format. Use YYYY-MM-DD.");
  if (auto err = pysem::UnhashableError(travel_class)) return CallOutcome::Raise(*err);
  if (travel_class != Str("economy") && travel_class != Str("business") &&
      travel_class != Str("first")) {
    // Python prints a set whose order depends on the hash seed; we print it sorted.
    return fail("Invalid travel class. Must be one of {'business', 'economy', 'first'}");
  }
  CallOutcome cost_outcome = GetFlightCost({from, to, date, travel_class});
  if (cost_outcome.raised()) return fail(*cost_outcome.exception_message);
  auto entry = flight_cost_lookup_.find(
      absl::StrCat(from.Str(), "|", to.Str(), "|", travel_class.Str(), "|", date.Str()));
  if (entry == flight_cost_lookup_.end()) {
    return fail("No available route for the given parameters");
  }
  PyValue travel_cost = PyValue::Float(entry->second);
  // `card` may be stale after GetFlightCost? No: it only touches flight_cost_lookup_.
  absl::StatusOr<const PyValue*> balance = pysem::GetItem(**card, Str("balance"));
  if (!balance.ok()) return RaiseStatus(balance.status());
  absl::StatusOr<bool> short_of = pysem::Compare(**balance, "<", travel_cost);
  if (!short_of.ok()) return RaiseStatus(short_of.status());
  if (*short_of) return fail("Insufficient funds");
  if (!budget_limit_.is_none()) {
    absl::StatusOr<bool> under = pysem::Compare(**balance, "<", budget_limit_);
    if (!under.ok()) return RaiseStatus(under.status());
    if (*under) return fail("Balance is less than budget limit");
  }
  if (booking_record_.is_dict() && booking_record_.dict().size() >= kMaxBookings) {
    return fail(
        absl::StrCat("Too many bookings: at most ", kMaxBookings, " bookings are allowed."));
  }
  absl::StatusOr<PyValue> new_balance = pysem::Arith(**balance, '-', travel_cost, true);
  if (!new_balance.ok()) return RaiseStatus(new_balance.status());
  (*card)->dict().Set("balance", *std::move(new_balance));  // a dict: "balance" was found
  std::string booking_id = absl::StrCat(random_.RandInt(1000000, 9999999));
  std::string transaction_id = absl::StrCat(random_.RandInt(10000000, 99999999));
  if (!booking_record_.is_dict()) {
    return CallOutcome::Raise(absl::StrCat("'", pysem::TypeName(booking_record_),
                                           "' object does not support item assignment"));
  }
  booking_record_.dict().Set(booking_id, MakeDict({{"card_id", card_id},
                                                   {"travel_date", date},
                                                   {"travel_from", from},
                                                   {"travel_to", to},
                                                   {"travel_class", travel_class},
                                                   {"travel_cost", travel_cost},
                                                   {"transaction_id", Str(transaction_id)}}));
  return CallOutcome::Return(
      MakeDict({{"booking_id", Str(booking_id)},
                {"transaction_id", Str(transaction_id)},
                {"booking_status", PyValue::Bool(true)},
                {"booking_history", long_context_ ? booking_record_ : PyValue::Dict()}}));
}

CallOutcome TravelApi::RetrieveInvoice(const std::vector<PyValue>& a) {
  const PyValue& booking_id = a[1];
  if (const char* err = TokenError(a[0])) return CallOutcome::Return(ErrorDict(err));
  absl::StatusOr<bool> known = pysem::Contains(booking_record_, booking_id);
  if (!known.ok()) return RaiseStatus(known.status());
  if (!*known) return CallOutcome::Return(ErrorDict("Booking not found"));
  absl::StatusOr<const PyValue*> record = pysem::GetItem(booking_record_, booking_id);
  if (!record.ok()) return RaiseStatus(record.status());
  PyDict invoice;
  invoice.Set("booking_id", booking_id);
  for (const char* key : {"travel_date", "travel_from", "travel_to", "travel_class", "travel_cost",
                          "transaction_id"}) {
    absl::StatusOr<const PyValue*> v = pysem::GetItem(**record, Str(key));
    if (!v.ok()) return RaiseStatus(v.status());
    invoice.Set(key, **v);
  }
  return CallOutcome::Return(MakeDict({{"invoice", PyValue::Dict(std::move(invoice))}}));
}

CallOutcome TravelApi::GetBookingHistory(const std::vector<PyValue>& a) {
  if (const char* err = TokenError(a[0])) return CallOutcome::Return(ErrorDict(err));
  return CallOutcome::Return(MakeDict({{"booking_history", booking_record_}}));
}

CallOutcome TravelApi::ListAllAirports(const std::vector<PyValue>&) {
  PyList airports;
  for (const char* code : kAirports) airports.push_back(Str(code));
  return CallOutcome::Return(PyValue::List(std::move(airports)));
}

CallOutcome TravelApi::CancelBooking(const std::vector<PyValue>& a) {
  const PyValue& booking_id = a[1];
  auto fail = [](std::string message) {
    return CallOutcome::Return(StatusError("cancel_status", std::move(message)));
  };
  if (const char* err = TokenError(a[0])) return fail(err);
  absl::StatusOr<bool> known = pysem::Contains(booking_record_, booking_id);
  if (!known.ok()) return RaiseStatus(known.status());
  if (!*known) return fail("Booking not found");
  absl::StatusOr<const PyValue*> record = pysem::GetItem(booking_record_, booking_id);
  if (!record.ok()) return RaiseStatus(record.status());
  absl::StatusOr<const PyValue*> card_id = pysem::GetItem(**record, Str("card_id"));
  if (!card_id.ok()) return RaiseStatus(card_id.status());
  absl::StatusOr<const PyValue*> cost = pysem::GetItem(**record, Str("travel_cost"));
  if (!cost.ok()) return RaiseStatus(cost.status());
  absl::StatusOr<PyValue*> card = pysem::GetMutableItem(credit_card_list_, **card_id);
  if (!card.ok()) return RaiseStatus(card.status());
  absl::StatusOr<const PyValue*> balance = pysem::GetItem(**card, Str("balance"));
  if (!balance.ok()) return RaiseStatus(balance.status());
  absl::StatusOr<PyValue> new_balance = pysem::Arith(**balance, '+', **cost, true);
  if (!new_balance.ok()) return RaiseStatus(new_balance.status());
  (*card)->dict().Set("balance", *std::move(new_balance));
  booking_record_.dict().Erase(booking_id);
  return CallOutcome::Return(MakeDict({{"cancel_status", PyValue::Bool(true)}}));
}

CallOutcome TravelApi::ComputeExchangeRate(const std::vector<PyValue>& a) {
  const PyValue& base = a[0];
  const PyValue& target = a[1];
  const PyValue& value = a[2];
  const PyValue usd = Str("USD");
  for (const Rate& r : kRates) {
    PyValue rate = r.is_int ? PyValue::Int(static_cast<int64_t>(r.rate)) : PyValue::Float(r.rate);
    if (base == usd && target == Str(r.to)) {
      absl::StatusOr<PyValue> product = pysem::Arith(value, '*', rate, false);
      if (!product.ok()) return RaiseStatus(product.status());
      absl::StatusOr<double> f = pysem::ToFloat(*product);
      if (!f.ok()) return RaiseStatus(f.status());
      return CallOutcome::Return(MakeDict({{"exchanged_value", PyValue::Float(*f)}}));
    }
    if (base == Str(r.to) && target == usd) {
      if (!value.is_number()) {
        return CallOutcome::Raise(absl::StrCat("unsupported operand type(s) for /: '",
                                               pysem::TypeName(value), "' and '",
                                               pysem::TypeName(rate), "'"));
      }
      double quotient = value.as_float() / r.rate;
      double rounded = std::isfinite(quotient) ? PyRound(quotient, 2) : quotient;
      return CallOutcome::Return(MakeDict({{"exchanged_value", PyValue::Float(rounded)}}));
    }
  }
  if (!augment()) return CallOutcome::Raise("No available exchange rate for the given currencies.");
  return CallOutcome::Raise(
      FillHint(kHintNoExchangeRate, {{"{base}", base.Str()}, {"{target}", target.Str()}}));
}

CallOutcome TravelApi::VerifyTravelerInformation(const std::vector<PyValue>& a) {
  const PyValue& first_name = a[0];
  const PyValue& last_name = a[1];
  const PyValue& date_of_birth = a[2];
  const PyValue& passport = a[3];
  auto fail = [](std::string message) {
    return CallOutcome::Return(MakeDict(
        {{"verification_status", PyValue::Bool(false)}, {"verification_failure", Str(message)}}));
  };
  if (user_first_name_ != first_name || user_last_name_ != last_name) {
    return fail(absl::StrCat("Cannot book flight information for another user.", "Expected ",
                             user_first_name_.Str(), " ", user_last_name_.Str(), ", got ",
                             first_name.Str(), " ", last_name.Str()));
  }
  if (!date_of_birth.is_str()) {
    return CallOutcome::Raise(
        absl::StrCat("strptime() argument 1 must be str, not ", pysem::TypeName(date_of_birth)));
  }
  absl::StatusOr<pysem::DateTime> birth = pysem::Strptime(date_of_birth, false);
  if (!birth.ok()) return fail("Invalid date of birth format. Please use YYYY-MM-DD.");
  const SandboxContext& ctx = context();
  bool before_birthday =
      std::pair(ctx.today_month, ctx.today_day) < std::pair(birth->month, birth->day);
  int age = ctx.today_year - birth->year - (before_birthday ? 1 : 0);
  if (age < 18) return fail("Traveler must be at least 18 years old.");
  if (!passport.is_str()) {
    return CallOutcome::Raise(
        absl::StrCat("'", pysem::TypeName(passport), "' object has no attribute 'startswith'"));
  }
  if (passport.as_str().rfind("US", 0) != 0) {
    return fail("Passport must be issued by the United States.");
  }
  return CallOutcome::Return(MakeDict({{"verification_status", PyValue::Bool(true)}}));
}

CallOutcome TravelApi::SetBudgetLimit(const std::vector<PyValue>& a) {
  if (const char* err = TokenError(a[0])) return CallOutcome::Return(ErrorDict(err));
  absl::StatusOr<double> limit = pysem::ToFloat(a[1]);
  if (!limit.ok()) return RaiseStatus(limit.status());
  budget_limit_ = PyValue::Float(*limit);
  return CallOutcome::Return(MakeDict({{"budget_limit", budget_limit_}}));
}

CallOutcome TravelApi::GetNearestAirportByCity(const std::vector<PyValue>& a) {
  const PyValue& location = a[0];
  if (auto err = pysem::UnhashableError(location)) return CallOutcome::Raise(*err);
  std::string code = "Unknown";
  if (location.is_str()) {
    for (const auto& [city, airport] : kNearestAirport) {
      if (location.as_str() == city) code = airport;
    }
  }
  return CallOutcome::Return(MakeDict({{"nearest_airport", Str(code)}}));
}

CallOutcome TravelApi::PurchaseInsurance(const std::vector<PyValue>& a) {
  const PyValue& booking_id = a[2];
  const PyValue& insurance_cost = a[3];
  const PyValue& card_id = a[4];
  auto fail = [](std::string message) {
    return CallOutcome::Return(StatusError("insurance_status", std::move(message)));
  };
  if (const char* err = TokenError(a[0])) return fail(err);
  if (!budget_limit_.is_none()) {
    absl::StatusOr<bool> over = pysem::Compare(budget_limit_, "<", insurance_cost);
    if (!over.ok()) return RaiseStatus(over.status());
    if (*over) return fail("Exceeded budget limit");
  }
  absl::StatusOr<bool> booked = pysem::Contains(booking_record_, booking_id);
  if (!booked.ok()) return RaiseStatus(booked.status());
  if (!*booked) return fail("Booking not found");
  absl::StatusOr<bool> known = pysem::Contains(credit_card_list_, card_id);
  if (!known.ok()) return RaiseStatus(known.status());
  if (!*known) return fail("Credit card not registered");
  absl::StatusOr<PyValue*> card = pysem::GetMutableItem(credit_card_list_, card_id);
  if (!card.ok()) return RaiseStatus(card.status());
  absl::StatusOr<const PyValue*> balance = pysem::GetItem(**card, Str("balance"));
  if (!balance.ok()) return RaiseStatus(balance.status());
  absl::StatusOr<PyValue> new_balance = pysem::Arith(**balance, '-', insurance_cost, true);
  if (!new_balance.ok()) return RaiseStatus(new_balance.status());
  (*card)->dict().Set("balance", *std::move(new_balance));
  return CallOutcome::Return(
      MakeDict({{"insurance_id", Str(absl::StrCat(random_.RandInt(100000000, 999999999)))},
                {"insurance_status", PyValue::Bool(true)}}));
}

CallOutcome TravelApi::ContactCustomerSupport(const std::vector<PyValue>& a) {
  absl::StatusOr<bool> known = pysem::Contains(booking_record_, a[0]);
  if (!known.ok()) return RaiseStatus(known.status());
  if (!*known) return CallOutcome::Return(ErrorDict("Booking not found"));
  return CallOutcome::Return(MakeDict(
      {{"customer_support_message",
        Str("Thank you for contacting customer support. Your message has been received and we "
            "will get back to you shortly.")}}));
}

CallOutcome TravelApi::GetAllCreditCards(const std::vector<PyValue>&) {
  return CallOutcome::Return(MakeDict({{"credit_card_list", credit_card_list_}}));
}

std::unique_ptr<ToolApi> NewTravelApi() { return std::make_unique<TravelApi>(); }

}  // namespace envtune
