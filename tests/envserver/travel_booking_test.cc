// Unit tests of the TravelAPI sandbox against ../shared/bfcl/spec/travel_booking.md: every
// method's success and error branches, the CPython random ids, Python type-misuse texts,
// long-context merging, the injectable "today", hostile-input limits and the METHOD.md §5.2
// augmentation hints (each condition on and off, state untouched).
#include "envserver/apis/travel_booking.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_replace.h"
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

// A typical task scenario: logged in with token "abc", one card, one booking.
constexpr const char* kTaskScenario = R"J({
  "credit_card_list": {"card_1": {"card_number": "4111", "expiration_date": "12/26",
                                  "cardholder_name": "Ann Lee", "card_verification_number": 123,
                                  "balance": 5000.0},
                       "card_2": {"card_type": "Visa", "expiration_date": "12/26"}},
  "booking_record": {"b1": {"card_id": "card_1", "travel_date": "2024-12-01", "travel_from": "SFO",
                            "travel_to": "LAX", "travel_class": "economy", "travel_cost": 200.0,
                            "transaction_id": "t1"},
                     "b2": {"flight_number": "X1", "departure": "SFO"}},
  "access_token": "abc", "token_type": "Bearer", "token_expires_in": 2, "token_scope": "read_write",
  "user_first_name": "Ann", "user_last_name": "Lee", "budget_limit": null
})J";

class TravelApiTest : public FactoryApiTest<NewTravelApi> {
 protected:
  PyArgs Book(PyValue card, const char* date, const char* from, const char* to,
              const char* cls) {
    return Kw({{"access_token", S("abc")},
               {"card_id", std::move(card)},
               {"travel_date", S(date)},
               {"travel_from", S(from)},
               {"travel_to", S(to)},
               {"travel_class", S(cls)}});
  }
};

TEST_F(TravelApiTest, RegisteredWithMethodsInDefinitionOrder) {
  absl::StatusOr<std::unique_ptr<ToolApi>> api = CreateToolApi("TravelAPI");
  ASSERT_TRUE(api.ok());
  std::vector<std::string> names = (*api)->MethodNames();
  ASSERT_EQ(names.size(), 18u);
  EXPECT_EQ(names.front(), "authenticate_travel");
  EXPECT_EQ(names.back(), "get_all_credit_cards");
}

TEST_F(TravelApiTest, DefaultsAndRandomIds) {
  Load("{}");
  EXPECT_EQ(State(),
            R"J({"credit_card_list": {}, "booking_record": {}, "access_token": null, "token_type": null, "token_expires_in": null, "token_scope": null, "user_first_name": null, "user_last_name": null, "budget_limit": null, "long_context": false})J");
  EXPECT_EQ(Call("travel_get_login_status"), R"J({"status": false})J");
  EXPECT_EQ(Call("register_credit_card", Kw({{"access_token", S("x")},
                                             {"card_number", S("1")},
                                             {"expiration_date", S("1/1")},
                                             {"cardholder_name", S("a")},
                                             {"card_verification_number", I(1)}})),
            R"J({"error": "Token not initialized"})J");
  EXPECT_EQ(Call("authenticate_travel", Kw({{"client_id", S("c")},
                                            {"client_secret", S("s")},
                                            {"refresh_token", S("r")},
                                            {"grant_type", S("read_write")},
                                            {"user_first_name", S("Ann")},
                                            {"user_last_name", S("Lee")}})),
            R"J({"expires_in": 2, "access_token": "251675", "token_type": "Bearer", "scope": "read_write"})J");
  EXPECT_EQ(Call("travel_get_login_status"), R"J({"status": true})J");
  EXPECT_EQ(Call("register_credit_card", Kw({{"access_token", S("251675")},
                                             {"card_number", S("4111")},
                                             {"expiration_date", S("12/30")},
                                             {"cardholder_name", S("Ann Lee")},
                                             {"card_verification_number", I(321)}})),
            R"J({"card_id": "391310425148"})J");
  EXPECT_EQ(StateField("credit_card_list").JsonDumps(),
            R"J({"391310425148": {"card_number": "4111", "expiration_date": "12/30", "cardholder_name": "Ann Lee", "card_verification_number": 321, "balance": 58617}})J");
}

TEST_F(TravelApiTest, FirstDrawVectors) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("register_credit_card", Kw({{"access_token", S("abc")},
                                             {"card_number", S("9")},
                                             {"expiration_date", S("1/1")},
                                             {"cardholder_name", S("a")},
                                             {"card_verification_number", I(1)}})),
            R"J({"card_id": "262919693687"})J");
  Load(kTaskScenario);
  EXPECT_EQ(Call("book_flight", Book(S("card_1"), "2024-12-01", "SFO", "LAX", "economy")),
            R"J({"booking_id": "3426812", "transaction_id": "45451592", "booking_status": true, "booking_history": {}})J");
  Load(kTaskScenario);
  EXPECT_EQ(Call("purchase_insurance", Kw({{"access_token", S("abc")},
                                           {"insurance_type", S("comprehensive")},
                                           {"booking_id", S("b1")},
                                           {"insurance_cost", I(50)},
                                           {"card_id", S("card_1")}})),
            R"J({"insurance_id": "255316027", "insurance_status": true})J");
  EXPECT_EQ(StateField("credit_card_list").dict().Find("card_1")->dict().Find("balance")->as_float(),
            4950.0);
}

TEST_F(TravelApiTest, RegisterErrors) {
  Load(kTaskScenario);
  PyArgs args = Kw({{"access_token", S("zzz")},
                    {"card_number", S("card_1")},
                    {"expiration_date", S("1/1")},
                    {"cardholder_name", S("a")},
                    {"card_verification_number", I(1)}});
  EXPECT_EQ(Call("register_credit_card", args), R"J({"error": "Invalid access token"})J");
  args.keywords[0].second = S("abc");
  EXPECT_EQ(Call("register_credit_card", args), R"J({"error": "Card already registered"})J");
  Load(R"J({"token_expires_in": 0, "access_token": "abc"})J");
  EXPECT_EQ(Call("register_credit_card", args), R"J({"error": "Token expired"})J");
  EXPECT_EQ(Call("travel_get_login_status"), R"J({"status": false})J");
}

TEST_F(TravelApiTest, FlightCost) {
  Load(kTaskScenario);
  // 2026-10-06: digit sum 17 (odd) -> x1; 2024-12-01: 12 (even) -> x2.
  EXPECT_EQ(Call("get_flight_cost", Kw({{"travel_from", S("SFO")},
                                        {"travel_to", S("LAX")},
                                        {"travel_date", S("2026-10-06")},
                                        {"travel_class", S("first")}})),
            R"J({"travel_cost_list": [1000.0]})J");
  EXPECT_EQ(Call("get_flight_cost", Kw({{"travel_from", S("SFO")},
                                        {"travel_to", S("LAX")},
                                        {"travel_date", S("2024-12-01")},
                                        {"travel_class", S("business")}})),
            R"J({"travel_cost_list": [800.0]})J");
  EXPECT_EQ(Call("get_flight_cost", Kw({{"travel_from", S("LAX")},
                                        {"travel_to", S("SFO")},
                                        {"travel_date", S("2024-12-01")},
                                        {"travel_class", S("Economy")}})),
            "Error during execution: Invalid travel class. Options are: economy, business, first.");
  EXPECT_EQ(Call("get_flight_cost", Kw({{"travel_from", S("RMS")},
                                        {"travel_to", S("SFO")},
                                        {"travel_date", S("2024-12-01")},
                                        {"travel_class", S("Economy")}})),
            "Error during execution: No available route for the given airports.");
  EXPECT_EQ(Call("get_flight_cost", Kw({{"travel_from", S("LAX")},
                                        {"travel_to", S("SFO")},
                                        {"travel_date", I(20240101)},
                                        {"travel_class", S("economy")}})),
            "Error during execution: 'int' object is not iterable");
  EXPECT_EQ(Call("get_flight_cost", Kw({{"travel_from", PyValue::List()},
                                        {"travel_to", S("SFO")},
                                        {"travel_date", S("2024-12-01")},
                                        {"travel_class", S("economy")}})),
            "Error during execution: unhashable type: 'list'");
}

TEST_F(TravelApiTest, BookFlightBranches) {
  Load(kTaskScenario);
  auto book = [&](PyArgs args) { return Call("book_flight", std::move(args)); };
  PyArgs bad_token = Book(S("card_1"), "2024-12-01", "SFO", "LAX", "economy");
  bad_token.keywords[0].second = S("nope");
  EXPECT_EQ(book(bad_token), R"J({"booking_status": false, "error": "Invalid access token"})J");
  EXPECT_EQ(book(Book(S("card_9"), "2024-12-01", "SFO", "LAX", "economy")),
            R"J({"booking_status": false, "error": "Card not registered"})J");
  EXPECT_EQ(book(Book(S("card_2"), "2024-12-01", "SFO", "LAX", "economy")),
            R"J({"booking_status": false, "error": "Balance not found"})J");
  EXPECT_EQ(book(Book(S("card_1"), "2024-12-01", "LA", "LAX", "economy")),
            R"J({"booking_status": false, "error": "Invalid departure airport code: LA"})J");
  EXPECT_EQ(book(Book(S("card_1"), "2024-12-01", "JFK", "PVG", "economy")),
            R"J({"booking_status": false, "error": "Invalid destination airport code: PVG"})J");
  EXPECT_EQ(book(Book(S("card_1"), "2024-02-30", "SFO", "LAX", "economy")),
            R"J({"booking_status": false, "error": "Invalid date format. Use YYYY-MM-DD."})J");
  EXPECT_EQ(book(Book(S("card_1"), "12/01/2024", "SFO", "LAX", "economy")),
            R"J({"booking_status": false, "error": "Invalid date format. Use YYYY-MM-DD."})J");
  EXPECT_EQ(book(Book(S("card_1"), "2024-12-01", "SFO", "LAX", "coach")),
            R"J({"booking_status": false, "error": "Invalid travel class. Must be one of {'business', 'economy', 'first'}"})J");
  EXPECT_EQ(book(Book(S("card_1"), "2024-12-01", "RMS", "SFO", "economy")),
            R"J({"booking_status": false, "error": "No available route for the given airports."})J");
  PyArgs int_date = Book(S("card_1"), "x", "SFO", "LAX", "economy");
  int_date.keywords[2].second = I(5);
  EXPECT_EQ(book(int_date), "Error during execution: strptime() argument 1 must be str, not int");
  EXPECT_EQ(book(Book(S("card_1"), "2024-12-01", "SFO", "CIA", "first")),
            R"J({"booking_status": false, "error": "Insufficient funds"})J");
  std::string before = State();
  // Budget limit compares the card balance (5000.0) with the limit.
  EXPECT_EQ(Call("set_budget_limit", Kw({{"access_token", S("abc")}, {"budget_limit", I(6000)}})),
            R"J({"budget_limit": 6000.0})J");
  EXPECT_EQ(book(Book(S("card_1"), "2024-12-01", "SFO", "LAX", "economy")),
            R"J({"booking_status": false, "error": "Balance is less than budget limit"})J");
  EXPECT_EQ(Call("set_budget_limit", Kw({{"access_token", S("abc")}, {"budget_limit", S(" 1e3 ")}})),
            R"J({"budget_limit": 1000.0})J");
  EXPECT_EQ(Call("set_budget_limit", Kw({{"access_token", S("abc")}, {"budget_limit", S("abc")}})),
            "Error during execution: could not convert string to float: 'abc'");
  EXPECT_EQ(book(Book(S("card_1"), "2024-12-01", "SFO", "LAX", "economy")),
            R"J({"booking_id": "3426812", "transaction_id": "45451592", "booking_status": true, "booking_history": {}})J");
  EXPECT_NE(State(), before);
  EXPECT_EQ(StateField("booking_record").dict().Find("3426812")->JsonDumps(),
            R"J({"card_id": "card_1", "travel_date": "2024-12-01", "travel_from": "SFO", "travel_to": "LAX", "travel_class": "economy", "travel_cost": 400.0, "transaction_id": "45451592"})J");
  EXPECT_EQ(StateField("credit_card_list").dict().Find("card_1")->dict().Find("balance")->as_float(),
            4600.0);
  Load(R"J({"token_expires_in": 0, "access_token": "abc"})J");
  EXPECT_EQ(book(Book(S("card_1"), "2024-12-01", "SFO", "LAX", "economy")),
            R"J({"booking_status": false, "error": "Token expired"})J");
}

TEST_F(TravelApiTest, InvoicesHistoryCancelSupport) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("retrieve_invoice", Kw({{"access_token", S("abc")}, {"booking_id", S("b1")}})),
            R"J({"invoice": {"booking_id": "b1", "travel_date": "2024-12-01", "travel_from": "SFO", "travel_to": "LAX", "travel_class": "economy", "travel_cost": 200.0, "transaction_id": "t1"}})J");
  EXPECT_EQ(Call("retrieve_invoice", Kw({{"access_token", S("abc")}})),
            R"J({"error": "Booking not found"})J");
  EXPECT_EQ(Call("retrieve_invoice", Kw({{"access_token", S("abc")}, {"booking_id", S("b2")}})),
            "Error during execution: 'travel_date'");
  EXPECT_EQ(Call("retrieve_invoice", Kw({{"access_token", S("x")}, {"booking_id", S("b1")}})),
            R"J({"error": "Invalid access token"})J");
  EXPECT_THAT(Call("get_booking_history", Kw({{"access_token", S("abc")}})),
              StartsWith(R"J({"booking_history": {"b1": {"card_id": "card_1", )J"));
  EXPECT_EQ(Call("get_booking_history", Kw({{"access_token", S("x")}})),
            R"J({"error": "Invalid access token"})J");
  EXPECT_EQ(Call("contact_customer_support", Kw({{"booking_id", S("b1")}, {"message", S("hi")}})),
            R"J({"customer_support_message": "Thank you for contacting customer support. Your message has been received and we will get back to you shortly."})J");
  EXPECT_EQ(Call("contact_customer_support", Kw({{"booking_id", S("zz")}, {"message", S("hi")}})),
            R"J({"error": "Booking not found"})J");
  EXPECT_EQ(Call("cancel_booking", Kw({{"access_token", S("abc")}, {"booking_id", S("zz")}})),
            R"J({"cancel_status": false, "error": "Booking not found"})J");
  EXPECT_EQ(Call("cancel_booking", Kw({{"access_token", S("x")}, {"booking_id", S("b1")}})),
            R"J({"cancel_status": false, "error": "Invalid access token"})J");
  EXPECT_EQ(Call("cancel_booking", Kw({{"access_token", S("abc")}, {"booking_id", S("b2")}})),
            "Error during execution: 'card_id'");
  EXPECT_EQ(Call("cancel_booking", Kw({{"access_token", S("abc")}, {"booking_id", S("b1")}})),
            R"J({"cancel_status": true})J");
  EXPECT_EQ(StateField("credit_card_list").dict().Find("card_1")->dict().Find("balance")->as_float(),
            5200.0);
  EXPECT_FALSE(StateField("booking_record").dict().Contains("b1"));
}

TEST_F(TravelApiTest, CancelWithMissingCardKeepsBooking) {
  Load(R"J({"access_token": "abc", "token_expires_in": 2, "credit_card_list": {},
            "booking_record": {"b1": {"card_id": "gone", "travel_cost": 5.0}}})J");
  EXPECT_EQ(Call("cancel_booking", Kw({{"access_token", S("abc")}, {"booking_id", S("b1")}})),
            "Error during execution: 'gone'");
  EXPECT_TRUE(StateField("booking_record").dict().Contains("b1"));
}

TEST_F(TravelApiTest, CardBalanceAndListing) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("get_credit_card_balance", Kw({{"access_token", S("abc")}, {"card_id", S("card_1")}})),
            R"J({"card_balance": 5000.0})J");
  EXPECT_EQ(Call("get_credit_card_balance", Kw({{"access_token", S("abc")}, {"card_id", S("c9")}})),
            R"J({"error": "Card not registered. Here are a list of card_id's: ['card_1', 'card_2']"})J");
  EXPECT_EQ(Call("get_credit_card_balance", Kw({{"access_token", S("abc")}, {"card_id", S("card_2")}})),
            "Error during execution: 'balance'");
  EXPECT_THAT(Call("get_all_credit_cards"), StartsWith(R"J({"credit_card_list": {"card_1": )J"));
  EXPECT_EQ(Call("list_all_airports"),
            "['RMS', 'SBK', 'MPC', 'SVP', 'SHD', 'CDG', 'LHR', 'SSV', 'OKD', 'WLB', 'PEK', 'HND', "
            "'HKG', 'CIA', 'CRH', 'ATV', 'PHV', 'GFD', 'SFO', 'LAX', 'JFK', 'ORD', 'BOS']");
  EXPECT_EQ(Call("get_nearest_airport_by_city", Kw({{"location", S("Crescent Hollow")}})),
            R"J({"nearest_airport": "CRH"})J");
  EXPECT_EQ(Call("get_nearest_airport_by_city", Kw({{"location", S("LA")}})),
            R"J({"nearest_airport": "Unknown"})J");
  EXPECT_EQ(Call("get_budget_fiscal_year"), R"J({"budget_fiscal_year": "2018"})J");
}

TEST_F(TravelApiTest, ExchangeRates) {
  Load(kTaskScenario);
  auto rate = [&](const char* base, const char* target, PyValue value) {
    return Call("compute_exchange_rate", Kw({{"base_currency", S(base)},
                                             {"target_currency", S(target)},
                                             {"value", std::move(value)}}));
  };
  EXPECT_EQ(rate("USD", "EUR", I(3)), R"J({"exchanged_value": 2.4000000000000004})J");
  EXPECT_EQ(rate("USD", "RMB", I(3)), R"J({"exchanged_value": 21.0})J");
  EXPECT_EQ(rate("RMB", "USD", F(20000.0)), R"J({"exchanged_value": 2857.14})J");
  EXPECT_EQ(rate("GBP", "USD", F(15400.0)), R"J({"exchanged_value": 22000.0})J");
  EXPECT_EQ(rate("JPY", "USD", I(1000)), R"J({"exchanged_value": 9.09})J");
  EXPECT_EQ(rate("EUR", "RMB", I(1)),
            "Error during execution: No available exchange rate for the given currencies.");
  EXPECT_EQ(rate("USD", "USD", I(1)),
            "Error during execution: No available exchange rate for the given currencies.");
  EXPECT_EQ(rate("RMB", "USD", S("5")),
            "Error during execution: unsupported operand type(s) for /: 'str' and 'int'");
  EXPECT_EQ(rate("USD", "EUR", S("5")),
            "Error during execution: can't multiply sequence by non-int of type 'float'");
  EXPECT_EQ(rate("USD", "RMB", S("5")), R"J({"exchanged_value": 5555555.0})J");
}

TEST_F(TravelApiTest, VerifyTravelerUsesInjectedToday) {
  Load(kTaskScenario);
  auto verify = [&](const char* first, const char* dob, PyValue passport) {
    return Call("verify_traveler_information", Kw({{"first_name", S(first)},
                                                   {"last_name", S("Lee")},
                                                   {"date_of_birth", S(dob)},
                                                   {"passport_number", std::move(passport)}}));
  };
  EXPECT_EQ(verify("Bob", "1990-01-01", S("US1")),
            R"J({"verification_status": false, "verification_failure": "Cannot book flight information for another user.Expected Ann Lee, got Bob Lee"})J");
  EXPECT_EQ(verify("Ann", "1990/01/01", S("US1")),
            R"J({"verification_status": false, "verification_failure": "Invalid date of birth format. Please use YYYY-MM-DD."})J");
  EXPECT_EQ(verify("Ann", "1990-01-01", S("UK1")),
            R"J({"verification_status": false, "verification_failure": "Passport must be issued by the United States."})J");
  EXPECT_EQ(verify("Ann", "1990-01-01", I(5)),
            "Error during execution: 'int' object has no attribute 'startswith'");
  EXPECT_EQ(verify("Ann", "1990-01-01", S("US1")), R"J({"verification_status": true})J");
  // Default today is 2024-09-01: born 2006-09-02 is 17, born 2006-09-01 is 18.
  EXPECT_EQ(verify("Ann", "2006-09-02", S("US1")),
            R"J({"verification_status": false, "verification_failure": "Traveler must be at least 18 years old."})J");
  EXPECT_EQ(verify("Ann", "2006-09-01", S("US1")), R"J({"verification_status": true})J");
  context_.today_year = 2024;
  context_.today_month = 8;
  context_.today_day = 31;
  EXPECT_EQ(verify("Ann", "2006-09-01", S("US1")),
            R"J({"verification_status": false, "verification_failure": "Traveler must be at least 18 years old."})J");
  Load("{}");
  EXPECT_EQ(Call("verify_traveler_information", Kw({{"first_name", S("a")},
                                                    {"last_name", S("b")},
                                                    {"date_of_birth", S("x")},
                                                    {"passport_number", S("y")}})),
            R"J({"verification_status": false, "verification_failure": "Cannot book flight information for another user.Expected None None, got a b"})J");
}

TEST_F(TravelApiTest, PurchaseInsuranceBranches) {
  Load(kTaskScenario);
  auto buy = [&](const char* token, const char* booking, PyValue cost, const char* card) {
    return Call("purchase_insurance", Kw({{"access_token", S(token)},
                                          {"insurance_type", S("basic")},
                                          {"booking_id", S(booking)},
                                          {"insurance_cost", std::move(cost)},
                                          {"card_id", S(card)}}));
  };
  EXPECT_EQ(buy("x", "b1", I(5), "card_1"),
            R"J({"insurance_status": false, "error": "Invalid access token"})J");
  EXPECT_EQ(buy("abc", "zz", I(5), "card_1"),
            R"J({"insurance_status": false, "error": "Booking not found"})J");
  EXPECT_EQ(buy("abc", "b1", I(5), "zz"),
            R"J({"insurance_status": false, "error": "Credit card not registered"})J");
  Call("set_budget_limit", Kw({{"access_token", S("abc")}, {"budget_limit", I(10)}}));
  EXPECT_EQ(buy("abc", "b1", I(50), "card_1"),
            R"J({"insurance_status": false, "error": "Exceeded budget limit"})J");
  EXPECT_EQ(buy("abc", "b1", S("5"), "card_1"),
            "Error during execution: '<' not supported between instances of 'float' and 'str'");
  // Positional binding follows the Python order (booking_id before insurance_cost).
  PyArgs positional;
  positional.positional = {S("abc"), S("basic"), S("b1"), I(5), S("card_1")};
  EXPECT_EQ(Call("purchase_insurance", positional),
            R"J({"insurance_id": "255316027", "insurance_status": true})J");
}

TEST_F(TravelApiTest, LongContextMergesExtensionsAndPadsResults) {
  Load(kTaskScenario, /*long_context=*/true);
  PyValue cards = StateField("credit_card_list");
  ASSERT_EQ(cards.dict().size(), 2u + 22u);
  EXPECT_EQ(cards.dict().entries()[2].first, S("1234567812345678"));
  EXPECT_EQ(cards.dict().entries().back().second.JsonDumps(),
            R"J({"card_number": "1000000790000004", "expiration_date": "04/30", "cardholder_name": "Cardholder 2100", "card_verification_number": 712, "balance": 6000.0})J");
  PyValue bookings = StateField("booking_record");
  ASSERT_EQ(bookings.dict().size(), 2u + 16u);
  EXPECT_EQ(bookings.dict().entries()[2].first, S("booking_901"));
  EXPECT_EQ(bookings.dict().entries()[2].second.JsonDumps(),
            R"J({"card_id": "1234567812345678", "travel_date": "2024-05-21", "travel_from": "SFO", "travel_to": "JFK", "travel_class": "economy", "travel_cost": 400.0, "transaction_id": "trans_001"})J");
  std::string costs = Call("get_flight_cost", Kw({{"travel_from", S("SFO")},
                                                  {"travel_to", S("LAX")},
                                                  {"travel_date", S("2024-12-01")},
                                                  {"travel_class", S("business")}}));
  absl::StatusOr<PyValue> parsed = PyValue::FromJson(costs);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->dict().Find("travel_cost_list")->items().size(), 153u);
  EXPECT_THAT(costs, StartsWith(R"J({"travel_cost_list": [800.0, 2000.0, 1600.0, )J"));
  std::string booked = Call("book_flight", Book(S("card_1"), "2024-12-01", "SFO", "LAX", "economy"));
  EXPECT_THAT(booked, StartsWith(R"J({"booking_id": "3426812", "transaction_id": "45451592", "booking_status": true, "booking_history": {"b1": )J"));
  EXPECT_THAT(booked, HasSubstr(R"J("booking_400": )J"));
  EXPECT_THAT(booked, HasSubstr(R"J(, "3426812": {"card_id": "card_1", )J"));
  // A task card with an extension id is not overwritten.
  Load(R"J({"credit_card_list": {"1234567812345678": {"balance": 1}}})J", true);
  EXPECT_EQ(StateField("credit_card_list").dict().Find("1234567812345678")->JsonDumps(),
            R"J({"balance": 1})J");
}

// Hint texts: each condition, on and off, still an exception, state untouched.
TEST_F(TravelApiTest, AugmentedFlightCostHints) {
  struct Case {
    const char* from;
    const char* to;
    std::string_view hint;
  };
  const Case cases[] = {{"LA", "JFK", kHintDepartureInvalid},
                        {"SFO", "NYC", kHintDestinationInvalid},
                        {"LA", "NYC", kHintBothAirportsInvalid},
                        {"RMS", "SFO", kHintNoRoute}};
  for (const Case& c : cases) {
    for (bool augment : {false, true}) {
      context_.augment = augment;
      Load(kTaskScenario);
      std::string before = State();
      std::string result = Call("get_flight_cost", Kw({{"travel_from", S(c.from)},
                                                       {"travel_to", S(c.to)},
                                                       {"travel_date", S("2024-12-01")},
                                                       {"travel_class", S("economy")}}));
      std::string expected =
          augment ? absl::StrReplaceAll(std::string(c.hint), {{"{from}", c.from}, {"{to}", c.to}})
                  : "No available route for the given airports.";
      EXPECT_EQ(result, "Error during execution: " + expected) << c.from << "->" << c.to;
      EXPECT_EQ(State(), before);
    }
  }
  context_.augment = true;
  Load(kTaskScenario);
  EXPECT_EQ(Call("get_flight_cost", Kw({{"travel_from", S("LA")},
                                        {"travel_to", S("NYC")},
                                        {"travel_date", S("2024-12-01")},
                                        {"travel_class", S("economy")}})),
            "Error during execution: No available route for the given airports: neither the "
            "departure code 'LA' nor the destination code 'NYC' is a valid airport code. Call "
            "list_all_airports to see the valid codes, or get_nearest_airport_by_city to get the "
            "code for a city.");
  // Valid routes are unaffected; book_flight passes the (valid-codes) hint through.
  EXPECT_EQ(Call("get_flight_cost", Kw({{"travel_from", S("SFO")},
                                        {"travel_to", S("LAX")},
                                        {"travel_date", S("2024-12-01")},
                                        {"travel_class", S("economy")}})),
            R"J({"travel_cost_list": [400.0]})J");
  EXPECT_EQ(Call("book_flight", Book(S("card_1"), "2024-12-01", "RMS", "SFO", "economy")),
            R"J({"booking_status": false, "error": "No available route from RMS to SFO: both airport codes are valid, but there is no flight from RMS to SFO."})J");
}

TEST_F(TravelApiTest, AugmentedExchangeRateHint) {
  for (bool augment : {false, true}) {
    context_.augment = augment;
    Load(kTaskScenario);
    std::string before = State();
    std::string result = Call("compute_exchange_rate", Kw({{"base_currency", S("EUR")},
                                                           {"target_currency", S("RMB")},
                                                           {"value", I(10)}}));
    EXPECT_EQ(result,
              augment ? "Error during execution: No available exchange rate from EUR to RMB. "
                        "Supported currency codes are USD, RMB, EUR, JPY, GBP, CAD, AUD, INR, "
                        "RUB, BRL, MXN, and rates exist only between USD and one of the others. "
                        "Please check the currency codes."
                      : "Error during execution: No available exchange rate for the given "
                        "currencies.");
    EXPECT_EQ(State(), before);
    // Supported pairs are unchanged by augmentation.
    EXPECT_EQ(Call("compute_exchange_rate", Kw({{"base_currency", S("USD")},
                                                {"target_currency", S("JPY")},
                                                {"value", I(2)}})),
              R"J({"exchanged_value": 220.0})J");
  }
}

TEST_F(TravelApiTest, CardLimitGivesErrorAndKeepsState) {
  Load(R"J({"access_token": "abc", "token_expires_in": 2})J");
  for (size_t i = 0; i < TravelApi::kMaxCards; ++i) {
    PyArgs args = Kw({{"access_token", S("abc")},
                      {"card_number", S("n")},
                      {"expiration_date", S("1/1")},
                      {"cardholder_name", S("a")},
                      {"card_verification_number", I(1)}});
    ASSERT_THAT(Call("register_credit_card", args), StartsWith(R"J({"card_id": )J"));
  }
  std::string before = State();
  EXPECT_EQ(Call("register_credit_card", Kw({{"access_token", S("abc")},
                                             {"card_number", S("n")},
                                             {"expiration_date", S("1/1")},
                                             {"cardholder_name", S("a")},
                                             {"card_verification_number", I(1)}})),
            R"J({"error": "Too many credit cards: at most 10000 cards can be registered."})J");
  EXPECT_EQ(State(), before);
}

}  // namespace
}  // namespace envtune
