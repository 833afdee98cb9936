// Unit tests of the TradingBot sandbox against ../shared/bfcl/spec/trading_bot.md: every
// method's success and error branches, Python type-misuse texts, the CPython random timestamps,
// long-context padding, the hostile-input limits, and the shared pysem helpers.
#include "envserver/apis/trading_bot.h"

#include <cmath>
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
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A typical task scenario (shape of the BFCL tasks: string order keys, stray "order_type").
constexpr const char* kTaskScenario = R"J({
  "orders": {"12345": {"symbol": "AAPL", "price": 210.65, "num_shares": 10, "status": "Completed"},
             "order_type": "Buy",
             "12446": {"symbol": "GOOG", "price": 2840.56, "num_shares": 5, "status": "Pending"}},
  "account_info": {"account_id": 12345, "balance": 10000.0, "binding_card": 1974202140965533},
  "authenticated": true, "market_status": "Open", "order_counter": 12447,
  "stocks": {"AAPL": {"price": 227.16, "percent_change": 0.17, "volume": 2.552, "MA(5)": 227.11, "MA(20)": 227.09},
             "TSLA": {"price": 667.92, "percent_change": -0.12, "volume": 1.654, "MA(5)": 671.15, "MA(20)": 668.2},
             "NVDA": {"price": 220.34, "percent_change": 0.34, "volume": 1.234, "MA(5)": 220.45, "MA(20)": 220.67}},
  "watch_list": ["NVDA"], "transaction_history": []
})J";

using TradingBotTest = FactoryApiTest<NewTradingBot>;

TEST_F(TradingBotTest, RegisteredAndMethodNamesInDefinitionOrder) {
  absl::StatusOr<std::unique_ptr<ToolApi>> api = CreateToolApi("TradingBot");
  ASSERT_TRUE(api.ok());
  EXPECT_EQ((*api)->ClassName(), "TradingBot");
  std::vector<std::string> names = (*api)->MethodNames();
  ASSERT_EQ(names.size(), 20u);
  EXPECT_EQ(names.front(), "get_current_time");
  EXPECT_EQ(names.back(), "notify_price_change");
}

TEST_F(TradingBotTest, DefaultStateWhenScenarioEmpty) {
  Load("{}");
  EXPECT_EQ(StateField("order_counter"), I(12446));
  EXPECT_EQ(StateField("authenticated"), PyValue::Bool(false));
  EXPECT_EQ(StateField("market_status"), S("Closed"));
  EXPECT_EQ(StateField("watch_list").Repr(), "['NVDA']");
  EXPECT_EQ(StateField("long_context"), PyValue::Bool(false));
  EXPECT_EQ(StateField("account_info").JsonDumps(),
            R"J({"account_id": 12345, "balance": 10000.0, "binding_card": 1974202140965533})J");
  EXPECT_EQ(StateField("orders").dict().size(), 2u);
  EXPECT_EQ(StateField("stocks").dict().size(), 11u);
  EXPECT_EQ(Call("get_stock_info", Kw({{"symbol", S("TSLA")}})),
            R"J({"price": 667.92, "percent_change": -0.12, "volume": 1.654, "MA(5)": 671.15, "MA(20)": 668.2})J");
  EXPECT_EQ(Call("get_order_details", Kw({{"order_id", I(12446)}})),
            R"J({"id": 12446, "order_type": "Sell", "symbol": "GOOG", "price": 2840.56, "amount": 5, "status": "Pending"})J");
}

TEST_F(TradingBotTest, OrderKeysOfDigitsBecomeInts) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("get_order_details", Kw({{"order_id", I(12345)}})),
            R"J({"symbol": "AAPL", "price": 210.65, "num_shares": 10, "status": "Completed"})J");
  EXPECT_EQ(Call("get_order_details", Kw({{"order_id", F(12446.0)}})),
            R"J({"symbol": "GOOG", "price": 2840.56, "num_shares": 5, "status": "Pending"})J");
  EXPECT_EQ(Call("get_order_details", Kw({{"order_id", S("12446")}})),
            R"J({"error": "Order with ID 12446 not found.Here is the list of orders_id: [12345, 'order_type', 12446]"})J");
  EXPECT_EQ(Call("get_order_details", Kw({{"order_id", S("order_type")}})), "Buy");
  EXPECT_EQ(Call("get_order_details", Kw({{"order_id", PyValue::List()}})),
            "Error during execution: unhashable type: 'list'");
}

TEST_F(TradingBotTest, SimpleQueries) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("get_current_time"), R"J({"current_time": "10:30 AM"})J");
  EXPECT_EQ(Call("get_symbol_by_name", Kw({{"name", S("Quasar Ltd.")}})), R"J({"symbol": "QUAS"})J");
  EXPECT_EQ(Call("get_symbol_by_name", Kw({{"name", S("apple")}})),
            R"J({"symbol": "Stock not found"})J");
  EXPECT_EQ(Call("get_symbol_by_name", Kw({{"name", PyValue::Dict()}})),
            "Error during execution: unhashable type: 'dict'");
  EXPECT_EQ(Call("get_stock_info", Kw({{"symbol", S("XYZ")}})),
            R"J({"error": "Stock with symbol 'XYZ' not found."})J");
  EXPECT_EQ(Call("get_available_stocks", Kw({{"sector", S("Technology")}})),
            R"J({"stock_list": ["AAPL", "GOOG", "MSFT", "NVDA"]})J");
  EXPECT_EQ(Call("get_available_stocks", Kw({{"sector", S("Automobile")}})),
            R"J({"stock_list": ["TSLA", "F", "GM"]})J");
  EXPECT_EQ(Call("get_available_stocks", Kw({{"sector", S("technology")}})),
            R"J({"stock_list": []})J");
  EXPECT_EQ(Call("trading_get_login_status"), R"J({"status": true})J");
}

TEST_F(TradingBotTest, CancelOrder) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("cancel_order", Kw({{"order_id", I(12345)}})),
            R"J({"error": "Can't cancel order 12345. Order is already completed."})J");
  EXPECT_EQ(Call("cancel_order", Kw({{"order_id", I(99)}})),
            R"J({"error": "Order with ID 99 not found."})J");
  EXPECT_EQ(Call("cancel_order", Kw({{"order_id", I(12446)}})),
            R"J({"order_id": 12446, "status": "Cancelled"})J");
  EXPECT_EQ(Call("cancel_order", Kw({{"order_id", I(12446)}})),
            R"J({"order_id": 12446, "status": "Cancelled"})J");
  EXPECT_EQ(StateField("orders").dict().Find(I(12446))->dict().Find("status")->as_str(),
            "Cancelled");
  // The stray "order_type": "Buy" entry is a str: "Buy"["status"] raises.
  EXPECT_EQ(Call("cancel_order", Kw({{"order_id", S("order_type")}})),
            "Error during execution: string indices must be integers, not 'str'");
}

TEST_F(TradingBotTest, PlaceOrderBranches) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("place_order", Kw({{"order_type", S("Buy")},
                                    {"symbol", S("ZZZ")},
                                    {"price", F(1.0)},
                                    {"amount", I(1)}})),
            R"J({"error": "Invalid stock symbol: ZZZ"})J");
  EXPECT_EQ(Call("place_order", Kw({{"order_type", S("Buy")},
                                    {"symbol", S("AAPL")},
                                    {"price", I(0)},
                                    {"amount", I(1)}})),
            R"J({"error": "Price and amount must be positive values."})J");
  EXPECT_EQ(Call("place_order", Kw({{"order_type", S("Buy")},
                                    {"symbol", S("AAPL")},
                                    {"price", F(1.0)},
                                    {"amount", F(-2.0)}})),
            R"J({"error": "Price and amount must be positive values."})J");
  EXPECT_EQ(Call("place_order", Kw({{"order_type", S("Buy")},
                                    {"symbol", S("AAPL")},
                                    {"price", S("10")},
                                    {"amount", I(1)}})),
            "Error during execution: '<=' not supported between instances of 'str' and 'int'");
  EXPECT_EQ(Call("place_order", Kw({{"order_type", I(1)},
                                    {"symbol", S("AAPL")},
                                    {"price", F(1.0)},
                                    {"amount", I(1)}})),
            "Error during execution: 'int' object has no attribute 'lower'");
  EXPECT_EQ(Call("place_order", Kw({{"order_type", S("BUY")},
                                    {"symbol", S("AAPL")},
                                    {"price", F(1000.05)},
                                    {"amount", I(100)}})),
            R"J({"error": "Insufficient funds: required $100005.00 but only $10000.00 available."})J");
  EXPECT_EQ(Call("place_order", Kw({{"order_type", S("Buy")},
                                    {"symbol", S("AAPL")},
                                    {"price", I(700)},
                                    {"amount", I(10)}})),
            R"J({"order_id": 12447, "order_type": "Buy", "status": "Pending", "price": 700.0, "amount": 10})J");
  EXPECT_EQ(StateField("order_counter"), I(12448));
  EXPECT_EQ(StateField("orders").dict().Find(I(12447))->JsonDumps(),
            R"J({"id": 12447, "order_type": "Buy", "symbol": "AAPL", "price": 700.0, "amount": 10, "status": "Open"})J");
  // Sell orders skip the funds check; the balance never changes.
  EXPECT_THAT(Call("place_order", Kw({{"order_type", S("Sell")},
                                      {"symbol", S("TSLA")},
                                      {"price", F(1e6)},
                                      {"amount", I(1000)}})),
              StartsWith(R"J({"order_id": 12448, "order_type": "Sell")J"));
  EXPECT_EQ(StateField("account_info").dict().Find("balance")->as_float(), 10000.0);
  Call("trading_logout");
  EXPECT_EQ(Call("place_order", Kw({{"order_type", S("Buy")},
                                    {"symbol", S("AAPL")},
                                    {"price", F(1.0)},
                                    {"amount", I(1)}})),
            R"J({"error": "User not authenticated. Please log in to place an order."})J");
}

TEST_F(TradingBotTest, FundsAndTimestampsFollowCPythonRandom) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("fund_account", Kw({{"amount", I(0)}})),
            R"J({"error": "Funding amount must be positive."})J");
  EXPECT_EQ(Call("fund_account", Kw({{"amount", F(2203.4)}})),
            R"J({"status": "Account funded successfully", "new_balance": 12203.4})J");
  EXPECT_EQ(Call("withdraw_funds", Kw({{"amount", I(500)}})),
            R"J({"status": "Withdrawal successful", "new_balance": 11703.4})J");
  const char* expected[] = {"2024-09-02 05:40:15", "2024-09-01 12:26:34", "2024-09-02 04:29:48",
                            "2024-09-02 09:45:15"};
  Call("fund_account", Kw({{"amount", I(1)}}));
  Call("fund_account", Kw({{"amount", I(1)}}));
  PyValue history = StateField("transaction_history");
  ASSERT_EQ(history.items().size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(history.items()[i].dict().Find("timestamp")->as_str(), expected[i]);
  }
  EXPECT_EQ(history.items()[1].JsonDumps(),
            R"J({"type": "withdrawal", "amount": 500, "timestamp": "2024-09-01 12:26:34"})J");
  EXPECT_EQ(Call("withdraw_funds", Kw({{"amount", F(1e9)}})),
            R"J({"error": "Insufficient funds for withdrawal."})J");
  EXPECT_EQ(Call("withdraw_funds", Kw({{"amount", F(-1)}})),
            R"J({"error": "Transaction amount must be positive."})J");
  EXPECT_EQ(Call("withdraw_funds", Kw({{"amount", PyValue::None()}})),
            "Error during execution: '<=' not supported between instances of 'NoneType' and "
            "'int'");
}

TEST_F(TradingBotTest, IntBalanceStaysInt) {
  Load(R"J({"account_info": {"balance": 100}, "authenticated": true, "market_status": "Open"})J");
  EXPECT_EQ(Call("withdraw_funds", Kw({{"amount", I(30)}})),
            R"J({"status": "Withdrawal successful", "new_balance": 70})J");
  EXPECT_EQ(Call("fund_account", Kw({{"amount", F(0.5)}})),
            R"J({"status": "Account funded successfully", "new_balance": 70.5})J");
}

TEST_F(TradingBotTest, WithdrawNeedsAuthAndOpenMarket) {
  Load(R"J({"market_status": "Closed"})J");
  EXPECT_EQ(Call("withdraw_funds", Kw({{"amount", I(1)}})),
            R"J({"error": "User not authenticated. Please log in to make a transaction."})J");
  EXPECT_EQ(Call("fund_account", Kw({{"amount", I(1)}})),
            R"J({"error": "User not authenticated. Please log in to fund the account."})J");
  EXPECT_EQ(Call("get_account_info"),
            R"J({"error": "User not authenticated. Please log in to view account information."})J");
  EXPECT_EQ(Call("trading_logout"), R"J({"status": "No user is currently logged in"})J");
  EXPECT_EQ(Call("trading_login", Kw({{"username", S("u")}, {"password", S("p")}})),
            R"J({"status": "Logged in successfully"})J");
  EXPECT_EQ(Call("trading_login", Kw({{"username", S("u")}, {"password", S("p")}})),
            R"J({"status": "Already logged in"})J");
  EXPECT_EQ(Call("withdraw_funds", Kw({{"amount", I(1)}})),
            R"J({"error": "Market is closed. Transactions are not allowed."})J");
  EXPECT_EQ(Call("get_account_info"),
            R"J({"account_id": 12345, "balance": 10000.0, "binding_card": 1974202140965533})J");
  EXPECT_EQ(Call("trading_logout"), R"J({"status": "Logged out successfully"})J");
  EXPECT_EQ(Call("trading_get_login_status"), R"J({"status": false})J");
  EXPECT_EQ(Call("trading_login"),
            "Error during execution: TradingBot.trading_login() missing 2 required positional "
            "arguments: 'username' and 'password'");
}

TEST_F(TradingBotTest, Watchlist) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("add_to_watchlist", Kw({{"stock", S("TSLA")}})),
            R"J({"watchlist": ["NVDA", "TSLA"]})J");
  EXPECT_EQ(Call("add_to_watchlist", Kw({{"stock", S("TSLA")}})),
            R"J({"watchlist": ["NVDA", "TSLA"]})J");
  EXPECT_EQ(Call("add_to_watchlist", Kw({{"stock", S("NOPE")}})),
            R"J({"watchlist": ["NVDA", "TSLA"]})J");
  EXPECT_EQ(Call("get_watchlist"), R"J({"watchlist": ["NVDA", "TSLA"]})J");
  EXPECT_EQ(Call("remove_stock_from_watchlist", Kw({{"symbol", S("NVDA")}})),
            R"J({"status": "Stock NVDA removed from watchlist successfully."})J");
  EXPECT_EQ(Call("remove_stock_from_watchlist", Kw({{"symbol", S("NVDA")}})),
            R"J({"error": "Stock NVDA not found in watchlist."})J");
  Call("trading_logout");
  EXPECT_EQ(Call("get_watchlist"),
            "['Error: User not authenticated. Please log in to view the watchlist.']");
  EXPECT_EQ(Call("remove_stock_from_watchlist", Kw({{"symbol", S("TSLA")}})),
            R"J({"error": "User not authenticated. Please log in to modify the watchlist."})J");
  EXPECT_EQ(Call("get_order_history"),
            "[{'error': 'User not authenticated. Please log in to view order history.'}]");
  EXPECT_EQ(Call("get_transaction_history"),
            "[{'error': 'User not authenticated. Please log in to view transaction history.'}]");
}

TEST_F(TradingBotTest, OrderHistory) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("get_order_history"), R"J({"history": [12345, "order_type", 12446]})J");
}

TEST_F(TradingBotTest, TransactionHistoryFiltering) {
  Load(R"J({"authenticated": true, "transaction_history": [
      {"type": "deposit", "amount": 5, "timestamp": "2024-08-31 23:59:59"},
      {"type": "deposit", "amount": 6, "timestamp": "2024-09-01 00:00:00"},
      {"type": "deposit", "amount": 7, "timestamp": "2024-09-02 05:40:15"}]})J");
  EXPECT_EQ(Call("get_transaction_history",
                 Kw({{"start_date", S("2024-9-1")}, {"end_date", S("2024-09-02")}})),
            R"J({"transaction_history": [{"type": "deposit", "amount": 6, "timestamp": "2024-09-01 00:00:00"}]})J");
  EXPECT_THAT(Call("get_transaction_history"), HasSubstr(R"J("amount": 7)J"));
  EXPECT_EQ(Call("get_transaction_history", Kw({{"start_date", S("2024/09/01")}})),
            "Error during execution: time data '2024/09/01' does not match format '%Y-%m-%d'");
  EXPECT_EQ(Call("get_transaction_history", Kw({{"end_date", S("2024-09-01x")}})),
            "Error during execution: unconverted data remains: x");
  EXPECT_EQ(Call("get_transaction_history", Kw({{"end_date", S("2023-02-29")}})),
            "Error during execution: day is out of range for month");
  EXPECT_EQ(Call("get_transaction_history", Kw({{"end_date", S("2024-13-01")}})),
            "Error during execution: time data '2024-13-01' does not match format '%Y-%m-%d'");
  EXPECT_EQ(Call("get_transaction_history", Kw({{"end_date", I(5)}})),
            "Error during execution: strptime() argument 1 must be str, not int");
  // Falsy arguments mean "no bound".
  EXPECT_THAT(Call("get_transaction_history", Kw({{"start_date", S("")}})),
              HasSubstr(R"J("amount": 5)J"));
}

TEST_F(TradingBotTest, MalformedStoredTimestampRaises) {
  Load(R"J({"authenticated": true, "transaction_history": [{"type": "deposit", "amount": 5}]})J");
  EXPECT_EQ(Call("get_transaction_history"), "Error during execution: 'timestamp'");
}

TEST_F(TradingBotTest, FilterAndNotify) {
  Load(kTaskScenario);
  EXPECT_EQ(Call("filter_stocks_by_price", Kw({{"stocks", PyValue::List({S("AAPL"), S("TSLA"),
                                                                         S("XXX"), S("AAPL")})},
                                               {"min_price", I(0)},
                                               {"max_price", F(300.0)}})),
            R"J({"filtered_stocks": ["AAPL", "XXX", "AAPL"]})J");
  EXPECT_EQ(Call("filter_stocks_by_price", Kw({{"stocks", PyValue::List({S("AAPL")})},
                                               {"min_price", S("a")},
                                               {"max_price", F(300.0)}})),
            "Error during execution: '>=' not supported between instances of 'float' and 'str'");
  EXPECT_EQ(Call("filter_stocks_by_price",
                 Kw({{"stocks", I(3)}, {"min_price", I(0)}, {"max_price", I(1)}})),
            "Error during execution: 'int' object is not iterable");
  EXPECT_EQ(Call("notify_price_change",
                 Kw({{"stocks", PyValue::List({S("AAPL"), S("TSLA"), S("NVDA"), S("XXX")})},
                     {"threshold", F(0.15)}})),
            R"J({"notification": "Stocks AAPL, NVDA have significant price changes."})J");
  EXPECT_EQ(Call("notify_price_change",
                 Kw({{"stocks", PyValue::List({S("TSLA")})}, {"threshold", I(1)}})),
            R"J({"notification": "No significant price changes in the selected stocks."})J");
}

TEST_F(TradingBotTest, LongContextPadsResultsOnly) {
  if (!LongContextConstants().is_dict()) GTEST_SKIP() << "long_context_constants.json not found";
  context_.long_context_constants = &LongContextConstants();
  Load(kTaskScenario, /*long_context=*/true);
  std::string state_before = State();
  EXPECT_EQ(StateField("long_context"), PyValue::Bool(true));
  std::string watch = Call("get_watchlist");
  EXPECT_THAT(watch, StartsWith("['NVDA', 'JHGUN', 'LMAT', "));
  EXPECT_THAT(watch, EndsWith(", Ellipsis]"));
  std::string info = Call("get_stock_info", Kw({{"symbol", S("AAPL")}}));
  EXPECT_THAT(info, StartsWith(R"J({"price": 227.16, "percent_change": 0.17, "volume": 2.552, "MA(5)": [234.34, )J"));
  std::string order = Call("get_order_details", Kw({{"order_id", I(12345)}}));
  EXPECT_THAT(order, StartsWith(R"J({"symbol": "AAPL", "price": 210.65, "num_shares": 10, "status": "Completed", "metadata": {"company_overview": ")J"));
  EXPECT_THAT(order, HasSubstr(R"J(", "sustainability_initiatives": ")J"));
  EXPECT_THAT(order, Not(HasSubstr("{symbol}")));
  EXPECT_EQ(Call("get_order_details", Kw({{"order_id", S("order_type")}})),
            "Error during execution: 'str' object has no attribute 'copy'");
  std::string history = Call("get_transaction_history");
  EXPECT_THAT(history,
              StartsWith(R"J({"transaction_history": [{"type": "deposit", "amount": 9933.53, "timestamp": "2024-05-01 22:14:05.858817"}, )J"));
  absl::StatusOr<PyValue> tech = PyValue::FromJson(Call("get_available_stocks", Kw({{"sector", S("Technology")}})));
  ASSERT_TRUE(tech.ok());
  EXPECT_EQ(tech->dict().Find("stock_list")->items().size(), 1004u);
  absl::StatusOr<PyValue> autos = PyValue::FromJson(Call("get_available_stocks", Kw({{"sector", S("Automobile")}})));
  ASSERT_TRUE(autos.ok());
  EXPECT_EQ(autos->dict().Find("stock_list")->items().size(), 1003u);
  EXPECT_EQ(State(), state_before);
}

TEST_F(TradingBotTest, OrderLimitGivesErrorAndKeepsState) {
  Load(R"J({"authenticated": true, "orders": {}, "order_counter": 1})J");
  PyArgs args = Kw({{"order_type", S("Sell")}, {"symbol", S("AAPL")}, {"price", F(1.0)}, {"amount", I(1)}});
  for (size_t i = 0; i < TradingBot::kMaxOrders; ++i) {
    ASSERT_THAT(Call("place_order", args), StartsWith(R"J({"order_id": )J"));
  }
  EXPECT_EQ(Call("place_order", args),
            R"J({"error": "Too many orders: at most 10000 orders are allowed."})J");
  EXPECT_EQ(StateField("orders").dict().size(), TradingBot::kMaxOrders);
  EXPECT_EQ(StateField("order_counter"), I(10001));
}

TEST_F(TradingBotTest, CloneIsIndependent) {
  Load(kTaskScenario);
  std::unique_ptr<ToolApi> copy = api_->Clone();
  Call("fund_account", Kw({{"amount", I(5)}}));
  // The clone has its own RNG: its first timestamp is the seed's first one too.
  copy->Invoke("fund_account", Kw({{"amount", I(5)}}));
  EXPECT_EQ(copy->PublicState().JsonDumps(), State());
}

TEST(PySemTest, ComparisonsAndArithmeticFollowPython) {
  EXPECT_TRUE(*pysem::Compare(I(1), "<=", F(1.0)));
  EXPECT_FALSE(*pysem::Compare(F(std::nan("")), ">=", I(0)));
  EXPECT_TRUE(*pysem::Compare(S("a"), "<", S("b")));
  EXPECT_EQ(pysem::Compare(I(1), ">", S("a")).status().message(),
            "'>' not supported between instances of 'int' and 'str'");
  EXPECT_EQ(*pysem::Arith(I(2), '+', I(3), false), I(5));
  EXPECT_TRUE(pysem::Arith(I(2), '+', F(0.5), false)->is_float());
  EXPECT_EQ(pysem::Arith(PyValue::None(), '+', I(1), true).status().message(),
            "unsupported operand type(s) for +=: 'NoneType' and 'int'");
  EXPECT_EQ(pysem::Arith(S("a"), '+', I(1), true).status().message(),
            "can only concatenate str (not \"int\") to str");
  EXPECT_EQ(*pysem::Arith(S("12"), '*', I(2), false), S("1212"));
  EXPECT_EQ(pysem::Arith(S("1"), '*', F(0.8), false).status().message(),
            "can't multiply sequence by non-int of type 'float'");
}

TEST(PySemTest, FloatAndStrptime) {
  EXPECT_EQ(*pysem::ToFloat(S(" 1_000.5 ")), 1000.5);
  EXPECT_TRUE(std::isinf(*pysem::ToFloat(S("-Infinity"))));
  EXPECT_EQ(pysem::ToFloat(S("abc")).status().message(), "could not convert string to float: 'abc'");
  EXPECT_EQ(pysem::ToFloat(S("1__0")).status().message(),
            "could not convert string to float: '1__0'");
  EXPECT_EQ(pysem::ToFloat(PyValue::List()).status().message(),
            "float() argument must be a string or a real number, not 'list'");
  absl::StatusOr<pysem::DateTime> dt = pysem::Strptime(S("2024-01- 5"), false);
  ASSERT_TRUE(dt.ok());
  EXPECT_EQ(dt->day, 5);
  EXPECT_EQ(pysem::Strptime(S("2024-01-32"), false).status().message(),
            "unconverted data remains: 2");
  EXPECT_EQ(pysem::Strptime(S("2024-01-32"), true).status().message(),
            "time data '2024-01-32' does not match format '%Y-%m-%d %H:%M:%S'");
  EXPECT_EQ(pysem::Strptime(S("0000-01-01"), false).status().message(), "year 0 is out of range");
  EXPECT_EQ(pysem::Strptime(S("2024-01-01 10:00:60"), true).status().message(),
            "second must be in 0..59");
  dt = pysem::Strptime(S("2024-01-01  9:5:5"), true);
  ASSERT_TRUE(dt.ok());
  EXPECT_EQ(dt->hour, 9);
  EXPECT_EQ(dt->second, 5);
}

}  // namespace
}  // namespace envtune
