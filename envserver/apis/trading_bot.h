// BFCL's TradingBot sandbox (trading_bot.py), byte-exact with BFCL: every result, error text and
// public state as ../shared/bfcl/spec/trading_bot.md describes, including Python's behaviour on
// wrongly typed arguments (the Python exception text, never a crash). Randomness (transaction
// timestamps) comes from a private CPython-exact random.Random(1053520); the clock is the fixed
// CURRENT_TIME 2024-09-01 10:30:00 (UTC), never the real one. Long-context padding comes from
// SandboxContext::long_context_constants (absent constants: no padding).
//
// Hostile-input limits (ours, not BFCL's): at most kMaxOrders orders and kMaxTransactions
// transactions; exceeding one returns {"error": ...} like BFCL's own errors and changes nothing.
//
// Also declares `pysem`, the small set of Python-semantics helpers (comparisons, arithmetic,
// `in`, subscripts, float(), iteration, datetime.strptime) shared with travel_booking.cc.
// Every helper returns the Python exception text (str(e)) as the status message on failure.
#ifndef ENVTUNE_ENVSERVER_APIS_TRADING_BOT_H_
#define ENVTUNE_ENVSERVER_APIS_TRADING_BOT_H_

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/py_random.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {
namespace pysem {

// Python `a <op> b`, op one of "<", "<=", ">", ">=" (numbers exactly, str by code point,
// lists/tuples lexicographically). Else TypeError "'<=' not supported between instances of ...".
absl::StatusOr<bool> Compare(const PyValue& a, std::string_view op, const PyValue& b);
// Python `a <op> b` (augmented: `a <op>= b`) for op '+', '-', '*': int/float arithmetic (int
// overflow beyond int64 falls back to float: documented divergence from Python's big ints),
// str/list concatenation and repetition; else Python's TypeError text.
absl::StatusOr<PyValue> Arith(const PyValue& a, char op, const PyValue& b, bool augmented);
// Python's error for using `v` as a dict key / set member ("unhashable type: 'list'"), if any.
std::optional<std::string> UnhashableError(const PyValue& v);
// Python `needle in container` (dict keys, list/tuple/set members, substring of str).
absl::StatusOr<bool> Contains(const PyValue& container, const PyValue& needle);
// Python `container[key]` read (dict lookup with KeyError repr(key); list/str/... TypeErrors).
absl::StatusOr<const PyValue*> GetItem(const PyValue& container, const PyValue& key);
absl::StatusOr<PyValue*> GetMutableItem(PyValue& container, const PyValue& key);
// Python float(v).
absl::StatusOr<double> ToFloat(const PyValue& v);
// Python iteration: list/tuple/set items, dict keys, str characters; else "'int' object is not
// iterable".
absl::StatusOr<PyList> Iterate(const PyValue& v);
// Python str.isdigit() over ASCII (non-ASCII digits are not recognised: documented divergence).
bool IsAsciiDigits(std::string_view s);
// Python type(v).__name__ as a std::string.
std::string TypeName(const PyValue& v);

// datetime.strptime(data, "%Y-%m-%d") or (with_time) "%Y-%m-%d %H:%M:%S", CPython 3.11 regex
// semantics (1-2 digit month/day/hour/..., " 5" for %d, \s+ for the space), errors verbatim:
// "time data '...' does not match format '...'", "unconverted data remains: ...", "day is out of
// range for month", "year 0 is out of range", "second must be in 0..59", and the TypeError
// "strptime() argument 1 must be str, not int". ASCII digits only.
struct DateTime {
  int year = 1, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  auto Tuple() const { return std::tuple(year, month, day, hour, minute, second); }
};
absl::StatusOr<DateTime> Strptime(const PyValue& data, bool with_time);

// A PyDict from string keys, in order.
PyValue MakeDict(std::initializer_list<std::pair<std::string_view, PyValue>> entries);

}  // namespace pysem

class TradingBot : public ToolApiBase<TradingBot> {
 public:
  static constexpr size_t kMaxOrders = 10000;
  static constexpr size_t kMaxTransactions = 10000;

  TradingBot();

  static const MethodTable& Methods();
  std::string_view ClassName() const override { return "TradingBot"; }
  void LoadScenario(const PyValue& scenario, bool long_context) override;
  PyValue PublicState() const override;

  CallOutcome GetCurrentTime(const std::vector<PyValue>& a);
  CallOutcome GetSymbolByName(const std::vector<PyValue>& a);
  CallOutcome GetStockInfo(const std::vector<PyValue>& a);
  CallOutcome GetOrderDetails(const std::vector<PyValue>& a);
  CallOutcome CancelOrder(const std::vector<PyValue>& a);
  CallOutcome PlaceOrder(const std::vector<PyValue>& a);
  CallOutcome WithdrawFunds(const std::vector<PyValue>& a);
  CallOutcome GetAccountInfo(const std::vector<PyValue>& a);
  CallOutcome TradingLogin(const std::vector<PyValue>& a);
  CallOutcome TradingGetLoginStatus(const std::vector<PyValue>& a);
  CallOutcome TradingLogout(const std::vector<PyValue>& a);
  CallOutcome FundAccount(const std::vector<PyValue>& a);
  CallOutcome RemoveStockFromWatchlist(const std::vector<PyValue>& a);
  CallOutcome GetWatchlist(const std::vector<PyValue>& a);
  CallOutcome GetOrderHistory(const std::vector<PyValue>& a);
  CallOutcome GetTransactionHistory(const std::vector<PyValue>& a);
  CallOutcome GetAvailableStocks(const std::vector<PyValue>& a);
  CallOutcome FilterStocksByPrice(const std::vector<PyValue>& a);
  CallOutcome AddToWatchlist(const std::vector<PyValue>& a);
  CallOutcome NotifyPriceChange(const std::vector<PyValue>& a);

 private:
  // A long-context constant by name (nullptr when unavailable).
  const PyValue* Constant(std::string_view name) const;
  // _generate_transaction_timestamp(): one randint draw.
  std::string TransactionTimestamp();
  // The shared end of withdraw_funds / fund_account: the kMaxTransactions limit, then
  // balance <op> amount (Python arithmetic, op '-' or '+') stored as account_info["balance"], a
  // {"type", "amount", "timestamp"} entry appended to transaction_history (AttributeError text
  // when that is not a list), and {"status": status, "new_balance": <new balance>}.
  CallOutcome RecordTransaction(const PyValue& balance, char op, const PyValue& amount,
                                const char* type, const char* status);

  PyValue orders_;
  PyValue account_info_;
  PyValue authenticated_;
  PyValue market_status_;
  PyValue order_counter_;
  PyValue stocks_;
  PyValue watch_list_;
  PyValue transaction_history_;
  bool long_context_ = false;
  PyRandom random_;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_TRADING_BOT_H_
