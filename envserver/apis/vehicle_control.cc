// VehicleControlAPI (see vehicle_control.h and ../shared/bfcl/spec/vehicle_control.md).
#include "envserver/apis/vehicle_control.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "envserver/apis/apis.h"
#include "envserver/pyparse.h"

namespace envtune {
namespace {

// ---------------------------------------------------------------------------------------------
// Python operator semantics on PyValues. A failed operation is an error status whose message is
// the str() of the exception CPython 3.11 raises.

constexpr int64_t kDefaultSeed = 141053;
constexpr int64_t kMaxFuelLevel = 50;          // MAX_FUEL_LEVEL (int)
constexpr double kMinFuelLevel = 0.0;          // MIN_FUEL_LEVEL
constexpr double kMilePerGallon = 20.0;        // MILE_PER_GALLON

absl::Status PyError(std::string message) { return absl::InvalidArgumentError(message); }

std::string TypeNameOf(const PyValue& v) { return std::string(v.TypeName()); }

enum class Cmp { kLt, kLe, kGt, kGe };

const char* CmpSymbol(Cmp op) {
  switch (op) {
    case Cmp::kLt: return "<";
    case Cmp::kLe: return "<=";
    case Cmp::kGt: return ">";
    case Cmp::kGe: return ">=";
  }
  return "?";
}

bool ApplyCmp(Cmp op, int sign) {
  switch (op) {
    case Cmp::kLt: return sign < 0;
    case Cmp::kLe: return sign <= 0;
    case Cmp::kGt: return sign > 0;
    case Cmp::kGe: return sign >= 0;
  }
  return false;
}

// Python `a <op> b` for one comparison operator.
absl::StatusOr<bool> Compare(const PyValue& a, Cmp op, const PyValue& b) {
  if (a.is_number() && b.is_number()) {
    const std::optional<int> c = PyNumberCompare(a, b);  // exact, ints of any size
    if (!c) return false;
    return ApplyCmp(op, *c);
  }
  if (a.is_str() && b.is_str()) {
    const int c = a.as_str().compare(b.as_str());  // UTF-8 byte order == code point order
    return ApplyCmp(op, c < 0 ? -1 : (c > 0 ? 1 : 0));
  }
  if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple())) {
    const PyList& x = a.items();
    const PyList& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!(x[i] == y[i])) return Compare(x[i], op, y[i]);
    }
    return ApplyCmp(op, x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0));
  }
  return PyError(absl::StrCat("'", CmpSymbol(op), "' not supported between instances of '",
                              TypeNameOf(a), "' and '", TypeNameOf(b), "'"));
}

// Python chained `lo <= v <= hi` (short-circuits like Python).
absl::StatusOr<bool> InClosedRange(const PyValue& lo, const PyValue& v, const PyValue& hi) {
  absl::StatusOr<bool> first = Compare(lo, Cmp::kLe, v);
  if (!first.ok() || !*first) return first;
  return Compare(v, Cmp::kLe, hi);
}

enum class Arith { kAdd, kSub, kMul, kDiv, kMod };

const char* ArithSymbol(Arith op) {
  switch (op) {
    case Arith::kAdd: return "+";
    case Arith::kSub: return "-";
    case Arith::kMul: return "*";
    case Arith::kDiv: return "/";
    case Arith::kMod: return "%";
  }
  return "?";
}

// Python float % float (float_rem).
double PyFloatMod(double x, double y) {
  double mod = std::fmod(x, y);
  if (mod != 0.0) {
    if ((y < 0) != (mod < 0)) mod += y;
  } else {
    mod = std::copysign(0.0, y);
  }
  return mod;
}

absl::StatusOr<PyValue> FloatArith(double x, Arith op, double y) {
  switch (op) {
    case Arith::kAdd: return PyValue::Float(x + y);
    case Arith::kSub: return PyValue::Float(x - y);
    case Arith::kMul: return PyValue::Float(x * y);
    case Arith::kDiv:
      if (y == 0.0) return PyError("float division by zero");
      return PyValue::Float(x / y);
    case Arith::kMod:
      if (y == 0.0) return PyError("float modulo");
      return PyValue::Float(PyFloatMod(x, y));
  }
  return PyError("bad operator");
}

absl::StatusOr<PyValue> IntArith(int64_t x, Arith op, int64_t y) {
  int64_t r = 0;
  bool overflow = false;
  switch (op) {
    case Arith::kAdd: overflow = __builtin_add_overflow(x, y, &r); break;
    case Arith::kSub: overflow = __builtin_sub_overflow(x, y, &r); break;
    case Arith::kMul: overflow = __builtin_mul_overflow(x, y, &r); break;
    case Arith::kDiv:
      if (y == 0) return PyError("division by zero");
      return PyValue::Float(static_cast<double>(x) / static_cast<double>(y));
    case Arith::kMod:
      if (y == 0) return PyError("integer modulo by zero");
      r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      return PyValue::Int(r);
  }
  // Python ints are unbounded: beyond int64 the exact big-int result.
  if (overflow) return PyBinaryOp(ArithSymbol(op), PyValue::Int(x), PyValue::Int(y));
  return PyValue::Int(r);
}

bool IsSequence(const PyValue& v) { return v.is_str() || v.is_list() || v.is_tuple(); }

// Python `a <op> b` for the binary arithmetic operators.
absl::StatusOr<PyValue> Arithmetic(const PyValue& a, Arith op, const PyValue& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_big_int() || b.is_big_int()) return PyBinaryOp(ArithSymbol(op), a, b);
    if (!a.is_float() && !b.is_float()) return IntArith(a.as_int(), op, b.as_int());
    return FloatArith(a.as_float(), op, b.as_float());
  }
  if (op == Arith::kAdd) {
    if (a.is_str() && b.is_str()) return PyValue::Str(a.as_str() + b.as_str());
    if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple())) {
      PyList items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      return a.is_list() ? PyValue::List(std::move(items)) : PyValue::Tuple(std::move(items));
    }
    if (IsSequence(a)) {
      return PyError(absl::StrCat("can only concatenate ", TypeNameOf(a), " (not \"",
                                  TypeNameOf(b), "\") to ", TypeNameOf(a)));
    }
  }
  if (op == Arith::kMul && ((IsSequence(a) && b.is_float()) || (a.is_float() && IsSequence(b)))) {
    return PyError("can't multiply sequence by non-int of type 'float'");
  }
  return PyError(absl::StrCat("unsupported operand type(s) for ", ArithSymbol(op), ": '",
                              TypeNameOf(a), "' and '", TypeNameOf(b), "'"));
}

bool IsPyWhitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' ||
         (c >= '\x1c' && c <= '\x1f');
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Parses digits with single underscores between digits (Python numeric literal rules) starting
// at `i`; appends the digits to `out`. Returns false when no digit is found or an underscore is
// misplaced.
bool ParseDigitPart(std::string_view s, size_t& i, std::string& out) {
  if (i >= s.size() || !IsDigit(s[i])) return false;
  while (i < s.size()) {
    if (IsDigit(s[i])) {
      out.push_back(s[i++]);
    } else if (s[i] == '_' && i + 1 < s.size() && IsDigit(s[i + 1])) {
      ++i;
    } else {
      break;
    }
  }
  return true;
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Python float(str).
std::optional<double> ParsePyFloatString(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && IsPyWhitespace(text[b])) ++b;
  while (e > b && IsPyWhitespace(text[e - 1])) --e;
  std::string_view s = text.substr(b, e - b);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  const std::string lower = AsciiLower(s);
  if (lower == "inf" || lower == "infinity") {
    return negative ? -HUGE_VAL : HUGE_VAL;
  }
  if (lower == "nan") return negative ? -std::nan("") : std::nan("");
  std::string clean;
  size_t i = 0;
  const bool int_part = ParseDigitPart(s, i, clean);
  bool frac_part = false;
  if (i < s.size() && s[i] == '.') {
    clean.push_back('.');
    ++i;
    frac_part = ParseDigitPart(s, i, clean);
  }
  if (!int_part && !frac_part) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    clean.push_back('e');
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) clean.push_back(s[i++]);
    if (!ParseDigitPart(s, i, clean)) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  // strtod is correctly rounded (glibc) and gives +-inf / 0 on overflow / underflow, like Python.
  const double v = std::strtod(clean.c_str(), nullptr);
  return negative ? -v : v;
}

// Python float(x).
absl::StatusOr<double> ToPyFloat(const PyValue& v) {
  if (v.is_number()) return v.as_float();
  if (v.is_str()) {
    std::optional<double> d = ParsePyFloatString(v.as_str());
    if (d.has_value()) return *d;
    return PyError("could not convert string to float: " + v.Repr());
  }
  return PyError(absl::StrCat("float() argument must be a string or a real number, not '",
                              TypeNameOf(v), "'"));
}

// Python `for x in v` (lists, tuples, sets, dict keys, str code points).
absl::StatusOr<PyList> Iterate(const PyValue& v) {
  if (v.is_list() || v.is_tuple() || v.is_set()) return v.items();
  if (v.is_dict()) {
    PyList keys;
    for (const auto& [k, unused] : v.dict()) keys.push_back(k);
    return keys;
  }
  if (v.is_str()) {
    PyList chars;
    const std::string& s = v.as_str();
    for (size_t i = 0; i < s.size();) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
      if (i + n > s.size()) n = s.size() - i;
      chars.push_back(PyValue::Str(s.substr(i, n)));
      i += n;
    }
    return chars;
  }
  return PyError(absl::StrCat("'", TypeNameOf(v), "' object is not iterable"));
}

bool IsUnhashable(const PyValue& v) { return v.is_list() || v.is_dict() || v.is_set(); }

// Python `container[key]` on a dict-valued attribute, raising like Python.
absl::StatusOr<PyValue*> Subscript(PyValue& container, const PyValue& key) {
  if (!container.is_dict()) {
    return PyError(absl::StrCat("'", TypeNameOf(container), "' object is not subscriptable"));
  }
  if (IsUnhashable(key)) return PyError(absl::StrCat("unhashable type: '", TypeNameOf(key), "'"));
  PyValue* v = container.dict().Find(key);
  if (v == nullptr) return PyError(key.Repr());  // str(KeyError(k)) == repr(k)
  return v;
}

CallOutcome RaiseStatus(const absl::Status& status) {
  return CallOutcome::Raise(std::string(status.message()));
}

PyValue Str(std::string s) { return PyValue::Str(std::move(s)); }

CallOutcome ErrorDict(std::string message) {
  return CallOutcome::Return(PyValue::Dict({{Str("error"), Str(std::move(message))}}));
}

// Evaluates a StatusOr expression; on error returns its message as a raised exception.
#define VC_ASSIGN_OR_RAISE(lhs, expr)              \
  auto lhs##_or = (expr);                          \
  if (!lhs##_or.ok()) return RaiseStatus(lhs##_or.status()); \
  auto lhs = *std::move(lhs##_or)

// ---------------------------------------------------------------------------------------------
// Data tables.

struct DistanceRow {
  const char* a;
  const char* b;
  double distance;
};
constexpr DistanceRow kDistances[] = {
    {"83214", "74532", 750.0},  {"56108", "62947", 320.0},  {"71354", "83462", 450.0},
    {"47329", "52013", 290.0},  {"69238", "51479", 630.0},  {"94016", "83214", 980.0},
    {"94016", "94704", 600.0},  {"94704", "08540", 2550.0}, {"94016", "08540", 1950.0},
    {"62947", "47329", 1053.0}, {"94016", "62947", 780.0},  {"74532", "94016", 880.0},
};

struct ZipRow {
  const char* city;
  const char* zipcode;
};
constexpr ZipRow kZipcodes[] = {
    {"Rivermist", "83214"},   {"Stonebrook", "74532"},      {"Maplecrest", "56108"},
    {"Silverpine", "62947"},  {"Shadowridge", "71354"},     {"Sunset Valley", "83462"},
    {"Oakendale", "47329"},   {"Willowbend", "52013"},      {"Crescent Hollow", "69238"},
    {"Autumnville", "51479"}, {"San Francisco", "94016"},
};
constexpr const char* kUnknownZipcode = "00000";

// LONG_WEATHER_EXTENSION in the original (printed) order.
struct WeatherDay {
  const char* day;
  double wind_speed, humidity, precipitation;
  int64_t uv_index;
  double visibility, air_pressure, dew_point;
};
constexpr WeatherDay kWeather[] = {
    {"-1_day", 15.0, 75.0, 5.0, 6, 8.0, 1010.0, 10.0},
    {"-2_day", 10.0, 65.0, 2.0, 7, 9.0, 1020.0, 8.0},
    {"-3_day", 20.0, 85.0, 0.0, 5, 7.0, 1005.0, 12.0},
    {"-4_day", 18.0, 80.0, 1.0, 6, 9.0, 1008.0, 9.0},
    {"-5_day", 12.0, 70.0, 3.0, 8, 10.0, 1015.0, 11.0},
    {"-6_day", 16.0, 72.0, 4.0, 7, 9.0, 1009.0, 10.0},
    {"-7_day", 14.0, 68.0, 6.0, 6, 8.0, 1012.0, 7.0},
    {"-8_day", 17.0, 78.0, 0.5, 5, 9.0, 1013.0, 8.0},
    {"-9_day", 19.0, 82.0, 0.0, 6, 10.0, 1011.0, 9.0},
    {"-10_day", 13.0, 74.0, 2.5, 7, 9.5, 1014.0, 10.0},
    {"-11_day", 11.0, 70.0, 1.5, 6, 8.5, 1016.0, 8.5},
    {"-12_day", 15.0, 75.0, 5.0, 6, 8.0, 1010.0, 10.0},
    {"-13_day", 10.0, 65.0, 2.0, 7, 9.0, 1020.0, 8.0},
    {"-14_day", 20.0, 85.0, 0.0, 5, 7.0, 1005.0, 12.0},
    {"-15_day", 18.0, 80.0, 1.0, 6, 9.0, 1008.0, 9.0},
};

std::string_view HintText(std::string_view function) {
  for (const VehicleHint& hint : kVehicleHints) {
    if (hint.function == function) return hint.text;
  }
  return {};
}

ParamSpec Req(const char* name) { return ParamSpec{name, std::nullopt}; }
ParamSpec Opt(const char* name, PyValue default_value) {
  return ParamSpec{name, std::move(default_value)};
}

PyValue DefaultDoorStatus() {
  PyDict doors;
  for (const char* name : {"driver", "passenger", "rear_left", "rear_right"}) {
    doors.Set(name, Str("unlocked"));
  }
  return PyValue::Dict(std::move(doors));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

VehicleControlApi::VehicleControlApi() : random_(kDefaultSeed) {
  LoadScenario(PyValue::Dict(), false);
}

const VehicleControlApi::MethodTable& VehicleControlApi::Methods() {
  using V = VehicleControlApi;
  static const MethodTable* table = new MethodTable{
      {"startEngine", {Req("ignitionMode")}, &V::StartEngine},
      {"fillFuelTank", {Req("fuelAmount")}, &V::FillFuelTank},
      {"lockDoors", {Req("unlock"), Req("door")}, &V::LockDoors},
      {"adjustClimateControl",
       {Req("temperature"),
        Opt("unit", Str("celsius")),
        Opt("fanSpeed", PyValue::Int(50)),
        Opt("mode", Str("auto"))},
       &V::AdjustClimateControl},
      {"get_outside_temperature_from_google", {}, &V::GetOutsideTemperatureFromGoogle},
      {"get_outside_temperature_from_weather_com", {}, &V::GetOutsideTemperatureFromWeatherCom},
      {"setHeadlights", {Req("mode")}, &V::SetHeadlights},
      {"displayCarStatus", {Req("option")}, &V::DisplayCarStatus},
      {"activateParkingBrake", {Req("mode")}, &V::ActivateParkingBrake},
      {"pressBrakePedal", {Req("pedalPosition")}, &V::PressBrakePedal},
      {"releaseBrakePedal", {}, &V::ReleaseBrakePedal},
      {"setCruiseControl", {Req("speed"), Req("activate"), Req("distanceToNextVehicle")},
       &V::SetCruiseControl},
      {"get_current_speed", {}, &V::GetCurrentSpeed},
      {"display_log", {Req("messages")}, &V::DisplayLog},
      {"estimate_drive_feasibility_by_mileage", {Req("distance")},
       &V::EstimateDriveFeasibilityByMileage},
      {"liter_to_gallon", {Req("liter")}, &V::LiterToGallon},
      {"gallon_to_liter", {Req("gallon")}, &V::GallonToLiter},
      {"estimate_distance", {Req("cityA"), Req("cityB")}, &V::EstimateDistance},
      {"get_zipcode_based_on_city", {Req("city")}, &V::GetZipcodeBasedOnCity},
      {"set_navigation", {Req("destination")}, &V::SetNavigation},
      {"check_tire_pressure", {}, &V::CheckTirePressure},
      {"find_nearest_tire_shop", {}, &V::FindNearestTireShop},
  };
  return *table;
}

void VehicleControlApi::LoadScenario(const PyValue& scenario, bool long_context) {
  static const PyDict* const kEmpty = new PyDict();
  const PyDict& s = scenario.is_dict() ? scenario.dict() : *kEmpty;
  auto get = [&s](std::string_view key, PyValue fallback) {
    const PyValue* v = s.Find(key);
    return v != nullptr ? *v : fallback;
  };
  // random.Random(seed) for int seeds; other seed types are not used by any task.
  const PyValue* seed = s.Find("random_seed");
  random_ = PyRandom(seed != nullptr && (seed->is_int() || seed->is_bool())
                         ? seed->as_big_int()
                         : PyBigInt(kDefaultSeed));
  fuel_level_ = get("fuelLevel", PyValue::Float(0.0));
  battery_voltage_ = get("batteryVoltage", PyValue::Float(12.6));
  engine_state_ = get("engineState", Str("stopped"));
  door_status_ = get("doorStatus", DefaultDoorStatus());
  // Always recomputed from doorStatus (a scenario's remainingUnlockedDoors is overwritten).
  int64_t locked = 0;
  if (door_status_.is_dict()) {
    for (const auto& [name, status] : door_status_.dict()) {
      if (status == Str("locked")) ++locked;
    }
  }
  remaining_unlocked_doors_ = PyValue::Int(4 - locked);
  ac_temperature_ = get("acTemperature", PyValue::Float(25.0));
  fan_speed_ = get("fanSpeed", PyValue::Int(50));
  ac_mode_ = get("acMode", Str("auto"));
  humidity_level_ = get("humidityLevel", PyValue::Float(50.0));
  head_light_status_ = get("headLightStatus", Str("off"));
  parking_brake_status_ = get("parkingBrakeStatus", Str("released"));
  parking_brake_force_ = get("parkingBrakeForce", PyValue::Float(0.0));
  slope_angle_ = get("slopeAngle", PyValue::Float(0.0));
  brake_pedal_status_ = get("brakePedalStatus", Str("released"));
  brake_pedal_force_ = get("brakePedalForce", PyValue::Float(0.0));
  distance_to_next_vehicle_ = get("distanceToNextVehicle", PyValue::Float(50.0));
  cruise_status_ = get("cruiseStatus", Str("inactive"));
  destination_ = get("destination", Str("None"));
  front_left_tire_pressure_ = get("frontLeftTirePressure", PyValue::Float(32.0));
  front_right_tire_pressure_ = get("frontRightTirePressure", PyValue::Float(32.0));
  rear_left_tire_pressure_ = get("rearLeftTirePressure", PyValue::Float(30.0));
  rear_right_tire_pressure_ = get("rearRightTirePressure", PyValue::Float(30.0));
  long_context_ = long_context;
}

PyValue VehicleControlApi::PublicState() const {
  // Python vars() order: attributes in the order _load_scenario assigns them.
  return PyValue::Dict({
      {Str("fuelLevel"), fuel_level_},
      {Str("batteryVoltage"), battery_voltage_},
      {Str("engine_state"), engine_state_},
      {Str("remainingUnlockedDoors"), remaining_unlocked_doors_},
      {Str("doorStatus"), door_status_},
      {Str("acTemperature"), ac_temperature_},
      {Str("fanSpeed"), fan_speed_},
      {Str("acMode"), ac_mode_},
      {Str("humidityLevel"), humidity_level_},
      {Str("headLightStatus"), head_light_status_},
      {Str("parkingBrakeStatus"), parking_brake_status_},
      {Str("brakePedalStatus"), brake_pedal_status_},
      {Str("distanceToNextVehicle"), distance_to_next_vehicle_},
      {Str("cruiseStatus"), cruise_status_},
      {Str("destination"), destination_},
      {Str("frontLeftTirePressure"), front_left_tire_pressure_},
      {Str("frontRightTirePressure"), front_right_tire_pressure_},
      {Str("rearLeftTirePressure"), rear_left_tire_pressure_},
      {Str("rearRightTirePressure"), rear_right_tire_pressure_},
      {Str("long_context"), PyValue::Bool(long_context_)},
  });
}

PyValue VehicleControlApi::LongWeatherExtension() {
  PyDict weather;
  for (const WeatherDay& d : kWeather) {
    weather.Set(d.day, PyValue::Dict({
                           {Str("windSpeed"), PyValue::Float(d.wind_speed)},
                           {Str("humidity"), PyValue::Float(d.humidity)},
                           {Str("precipitation"), PyValue::Float(d.precipitation)},
                           {Str("uvIndex"), PyValue::Int(d.uv_index)},
                           {Str("visibility"), PyValue::Float(d.visibility)},
                           {Str("airPressure"), PyValue::Float(d.air_pressure)},
                           {Str("dewPoint"), PyValue::Float(d.dew_point)},
                       }));
  }
  return PyValue::Dict(std::move(weather));
}

PyValue VehicleControlApi::Constant(std::string_view name, PyValue fallback) const {
  const PyValue* constants = context().long_context_constants;
  if (constants == nullptr || !constants->is_dict()) return fallback;
  const PyValue* v = constants->dict().Find(name);
  return v != nullptr ? *v : fallback;
}

// ---------------------------------------------------------------------------------------------
// Methods, in BFCL's definition order.

CallOutcome VehicleControlApi::StartEngine(const std::vector<PyValue>& a) {
  const PyValue& ignition_mode = a[0];
  if (ignition_mode == Str("STOP")) engine_state_ = Str("stopped");
  VC_ASSIGN_OR_RAISE(doors_unlocked, Compare(remaining_unlocked_doors_, Cmp::kGt, PyValue::Int(0)));
  if (doors_unlocked) {
    if (!door_status_.is_dict()) {
      return CallOutcome::Raise(
          absl::StrCat("'", TypeNameOf(door_status_), "' object has no attribute 'items'"));
    }
    std::vector<std::string> names;
    for (const auto& [name, status] : door_status_.dict()) {
      if (!(status == Str("unlocked"))) continue;
      if (!name.is_str()) {
        return CallOutcome::Raise(absl::StrCat("sequence item ", names.size(),
                                               ": expected str instance, ", TypeNameOf(name),
                                               " found"));
      }
      names.push_back(name.as_str());
    }
    return ErrorDict(
        "All doors must be locked before starting the engine. Here are the unlocked doors: " +
        absl::StrJoin(names, ", "));
  }
  if (brake_pedal_status_ != Str("pressed")) {
    return ErrorDict("Brake pedal needs to be pressed when starting the engine.");
  }
  if (brake_pedal_force_ != PyValue::Float(1000.0)) {
    return ErrorDict("Must press the brake fully before starting the engine.");
  }
  VC_ASSIGN_OR_RAISE(empty, Compare(fuel_level_, Cmp::kLt, PyValue::Float(kMinFuelLevel)));
  if (empty) return ErrorDict("Fuel tank is empty.");
  if (!(ignition_mode == Str("START"))) return ErrorDict("Invalid ignition mode.");
  engine_state_ = Str("running");
  return CallOutcome::Return(PyValue::Dict({
      {Str("engineState"), engine_state_},
      {Str("fuelLevel"), fuel_level_},
      {Str("batteryVoltage"), battery_voltage_},
  }));
}

CallOutcome VehicleControlApi::FillFuelTank(const std::vector<PyValue>& a) {
  const PyValue& amount = a[0];
  VC_ASSIGN_OR_RAISE(negative, Compare(amount, Cmp::kLt, PyValue::Int(0)));
  if (negative) return ErrorDict("Fuel amount cannot be negative.");
  VC_ASSIGN_OR_RAISE(total, Arithmetic(fuel_level_, Arith::kAdd, amount));
  VC_ASSIGN_OR_RAISE(over, Compare(total, Cmp::kGt, PyValue::Int(kMaxFuelLevel)));
  if (over) return ErrorDict("Cannot fill gas above the tank capacity.");
  VC_ASSIGN_OR_RAISE(under, Compare(total, Cmp::kLt, PyValue::Float(kMinFuelLevel)));
  if (under) return ErrorDict("Fuel tank is empty. Min fuel level is 0 gallons.");
  fuel_level_ = std::move(total);
  return CallOutcome::Return(PyValue::Dict({{Str("fuelLevel"), fuel_level_}}));
}

CallOutcome VehicleControlApi::LockDoors(const std::vector<PyValue>& a) {
  const bool unlock = a[0].Truthy();
  const PyValue target = Str(unlock ? "unlocked" : "locked");
  VC_ASSIGN_OR_RAISE(doors, Iterate(a[1]));
  for (const PyValue& door : doors) {
    // Each door is applied before the next one is looked up: a KeyError keeps earlier changes.
    VC_ASSIGN_OR_RAISE(status, Subscript(door_status_, door));
    if (*status == target) continue;
    *status = target;
    VC_ASSIGN_OR_RAISE(remaining, Arithmetic(remaining_unlocked_doors_,
                                             unlock ? Arith::kAdd : Arith::kSub,
                                             PyValue::Int(1)));
    remaining_unlocked_doors_ = std::move(remaining);
  }
  return CallOutcome::Return(PyValue::Dict({
      {Str("lockStatus"), target},
      {Str("remainingUnlockedDoors"), remaining_unlocked_doors_},
  }));
}

CallOutcome VehicleControlApi::AdjustClimateControl(const std::vector<PyValue>& a) {
  const PyValue& temperature = a[0];
  const PyValue& unit = a[1];
  const PyValue& fan_speed = a[2];
  const PyValue& mode = a[3];
  VC_ASSIGN_OR_RAISE(fan_ok, InClosedRange(PyValue::Int(0), fan_speed, PyValue::Int(100)));
  if (!fan_ok) return ErrorDict("Fan speed must be between 0 and 100.");
  ac_temperature_ = temperature;
  if (unit == Str("fahrenheit")) {
    // (temperature - 32) * 5 / 9, left to right; a failure leaves acTemperature = temperature.
    VC_ASSIGN_OR_RAISE(diff, Arithmetic(temperature, Arith::kSub, PyValue::Int(32)));
    VC_ASSIGN_OR_RAISE(scaled, Arithmetic(diff, Arith::kMul, PyValue::Int(5)));
    VC_ASSIGN_OR_RAISE(celsius, Arithmetic(scaled, Arith::kDiv, PyValue::Int(9)));
    ac_temperature_ = std::move(celsius);
  }
  fan_speed_ = fan_speed;
  ac_mode_ = mode;
  return CallOutcome::Return(PyValue::Dict({
      {Str("currentACTemperature"), temperature},
      {Str("climateMode"), mode},
      {Str("humidityLevel"), humidity_level_},
  }));
}

CallOutcome VehicleControlApi::GetOutsideTemperatureFromGoogle(const std::vector<PyValue>&) {
  PyValue temperature = PyValue::Float(random_.Uniform(-10.0, 40.0));
  if (long_context_) {
    PyValue weather = LongWeatherExtension();
    weather.dict().Set("outsideTemperature", std::move(temperature));
    return CallOutcome::Return(std::move(weather));
  }
  return CallOutcome::Return(PyValue::Dict({{Str("outsideTemperature"), std::move(temperature)}}));
}

CallOutcome VehicleControlApi::GetOutsideTemperatureFromWeatherCom(const std::vector<PyValue>&) {
  if (augment()) {
    return ErrorDict(std::string(HintText("get_outside_temperature_from_weather_com")));
  }
  return CallOutcome::Return(PyValue::Dict({{Str("error"), PyValue::Int(404)}}));
}

CallOutcome VehicleControlApi::SetHeadlights(const std::vector<PyValue>& a) {
  const PyValue& mode = a[0];
  if (!(mode == Str("on") || mode == Str("off") || mode == Str("auto"))) {
    return ErrorDict("Invalid headlight mode.");
  }
  head_light_status_ = Str(mode == Str("on") ? "on" : "off");
  return CallOutcome::Return(PyValue::Dict({{Str("headlightStatus"), head_light_status_}}));
}

CallOutcome VehicleControlApi::DisplayCarStatus(const std::vector<PyValue>& a) {
  const PyValue& option = a[0];
  PyDict status;
  if (long_context_) status.Set("metadata", Constant("CAR_STATUS_METADATA_EXTENSION", Str("")));
  struct Field {
    const char* key;
    const PyValue VehicleControlApi::*source;
  };
  struct OptionRow {
    const char* option;
    std::vector<Field> fields;
  };
  using V = VehicleControlApi;
  static const std::vector<OptionRow>* const kOptions = new std::vector<OptionRow>{
      {"fuel", {{"fuelLevel", &V::fuel_level_}}},
      {"battery", {{"batteryVoltage", &V::battery_voltage_}}},
      {"doors", {{"doorStatus", &V::door_status_}}},
      {"climate",
       {{"currentACTemperature", &V::ac_temperature_},
        {"fanSpeed", &V::fan_speed_},
        {"climateMode", &V::ac_mode_},
        {"humidityLevel", &V::humidity_level_}}},
      {"headlights", {{"headlightStatus", &V::head_light_status_}}},
      {"parkingBrake",
       {{"parkingBrakeStatus", &V::parking_brake_status_},
        {"parkingBrakeForce", &V::parking_brake_force_},
        {"slopeAngle", &V::slope_angle_}}},
      {"brakePedal",
       {{"brakePedalStatus", &V::brake_pedal_status_},
        {"brakePedalForce", &V::brake_pedal_force_}}},
      {"engine", {{"engineState", &V::engine_state_}}},
  };
  const OptionRow* row = nullptr;
  for (const OptionRow& r : *kOptions) {
    if (option == Str(r.option)) {
      row = &r;
      break;
    }
  }
  if (row == nullptr) {
    status.Set("error", Str("Invalid option"));
  } else {
    for (const Field& f : row->fields) status.Set(f.key, this->*f.source);
  }
  return CallOutcome::Return(PyValue::Dict(std::move(status)));
}

CallOutcome VehicleControlApi::ActivateParkingBrake(const std::vector<PyValue>& a) {
  const PyValue& mode = a[0];
  const bool engage = mode == Str("engage");
  if (!engage && !(mode == Str("release"))) return ErrorDict("Invalid mode");
  parking_brake_status_ = Str(engage ? "engaged" : "released");
  parking_brake_force_ = PyValue::Float(engage ? 500.0 : 0.0);
  slope_angle_ = PyValue::Float(10.0);
  PyDict result;
  if (long_context_) {
    result.Set("parkingBrakeInstruction", Constant("PARKING_BRAKE_INSTRUCTION", Str("")));
  }
  result.Set("parkingBrakeStatus", parking_brake_status_);
  result.Set("_parkingBrakeForce", parking_brake_force_);
  result.Set("_slopeAngle", slope_angle_);
  return CallOutcome::Return(PyValue::Dict(std::move(result)));
}

CallOutcome VehicleControlApi::PressBrakePedal(const std::vector<PyValue>& a) {
  const PyValue& position = a[0];
  VC_ASSIGN_OR_RAISE(in_range, InClosedRange(PyValue::Int(0), position, PyValue::Int(1)));
  if (!in_range) return ErrorDict("Pedal position must be between 0 and 1.");
  if (position == PyValue::Int(0)) {
    brake_pedal_status_ = Str("released");
    brake_pedal_force_ = PyValue::Float(0.0);
    return CallOutcome::Return(PyValue::Dict({
        {Str("brakePedalStatus"), Str("released")},
        {Str("brakePedalForce"), PyValue::Float(0.0)},
    }));
  }
  VC_ASSIGN_OR_RAISE(force, Arithmetic(position, Arith::kMul, PyValue::Int(1000)));
  VC_ASSIGN_OR_RAISE(force_float, ToPyFloat(force));
  brake_pedal_status_ = Str("pressed");
  brake_pedal_force_ = std::move(force);
  return CallOutcome::Return(PyValue::Dict({
      {Str("brakePedalStatus"), Str("pressed")},
      {Str("brakePedalForce"), PyValue::Float(force_float)},
  }));
}

CallOutcome VehicleControlApi::ReleaseBrakePedal(const std::vector<PyValue>&) {
  brake_pedal_status_ = Str("released");
  brake_pedal_force_ = PyValue::Float(0.0);
  return CallOutcome::Return(PyValue::Dict({
      {Str("brakePedalStatus"), Str("released")},
      {Str("brakePedalForce"), PyValue::Float(0.0)},
  }));
}

CallOutcome VehicleControlApi::SetCruiseControl(const std::vector<PyValue>& a) {
  VC_ASSIGN_OR_RAISE(distance, ToPyFloat(a[2]));
  VC_ASSIGN_OR_RAISE(speed, ToPyFloat(a[0]));
  if (engine_state_ == Str("stopped")) {
    return ErrorDict("Start the engine before activating the cruise control.");
  }
  const bool activate = a[1].Truthy();
  distance_to_next_vehicle_ = PyValue::Float(distance);
  if (activate) {
    // NaN fails only the modulo test, as in Python.
    if (speed < 0 || speed > 120 || PyFloatMod(speed, 5.0) != 0) return ErrorDict("Invalid speed");
    cruise_status_ = Str("active");
  } else {
    cruise_status_ = Str("inactive");
  }
  return CallOutcome::Return(PyValue::Dict({
      {Str("cruiseStatus"), cruise_status_},
      {Str("currentSpeed"), PyValue::Float(speed)},
      {Str("distanceToNextVehicle"), PyValue::Float(distance)},
  }));
}

CallOutcome VehicleControlApi::GetCurrentSpeed(const std::vector<PyValue>&) {
  return CallOutcome::Return(
      PyValue::Dict({{Str("currentSpeed"), PyValue::Float(random_.Uniform(0.0, 120.0))}}));
}

CallOutcome VehicleControlApi::DisplayLog(const std::vector<PyValue>& a) {
  return CallOutcome::Return(PyValue::Dict({{Str("log"), a[0]}}));
}

CallOutcome VehicleControlApi::EstimateDriveFeasibilityByMileage(const std::vector<PyValue>& a) {
  VC_ASSIGN_OR_RAISE(range,
                     Arithmetic(fuel_level_, Arith::kMul, PyValue::Float(kMilePerGallon)));
  VC_ASSIGN_OR_RAISE(too_far, Compare(range, Cmp::kLt, a[0]));
  return CallOutcome::Return(PyValue::Dict({{Str("canDrive"), PyValue::Bool(!too_far)}}));
}

CallOutcome VehicleControlApi::LiterToGallon(const std::vector<PyValue>& a) {
  VC_ASSIGN_OR_RAISE(gallon, Arithmetic(a[0], Arith::kMul, PyValue::Float(0.264172)));
  return CallOutcome::Return(PyValue::Dict({{Str("gallon"), std::move(gallon)}}));
}

CallOutcome VehicleControlApi::GallonToLiter(const std::vector<PyValue>& a) {
  VC_ASSIGN_OR_RAISE(liter, Arithmetic(a[0], Arith::kMul, PyValue::Float(3.78541)));
  return CallOutcome::Return(PyValue::Dict({{Str("liter"), std::move(liter)}}));
}

CallOutcome VehicleControlApi::EstimateDistance(const std::vector<PyValue>& a) {
  const PyValue& city_a = a[0];
  const PyValue& city_b = a[1];
  PyDict result;
  for (const DistanceRow& row : kDistances) {
    if ((city_a == Str(row.a) && city_b == Str(row.b)) ||
        (city_a == Str(row.b) && city_b == Str(row.a))) {
      result.Set("distance", PyValue::Float(row.distance));
      break;
    }
  }
  if (result.empty()) {
    if (augment()) {
      result.Set("error", Str(absl::StrReplaceAll(std::string(HintText("estimate_distance")),
                                                  {{"{cityA}", city_a.Repr()},
                                                   {"{cityB}", city_b.Repr()}})));
    } else {
      result.Set("error", Str("distance not found in database."));
    }
  }
  if (long_context_) {
    result.Set("intermediaryCities", Constant("INTERMEDIARY_CITIES", PyValue::List()));
  }
  return CallOutcome::Return(PyValue::Dict(std::move(result)));
}

CallOutcome VehicleControlApi::GetZipcodeBasedOnCity(const std::vector<PyValue>& a) {
  const char* zipcode = kUnknownZipcode;
  for (const ZipRow& row : kZipcodes) {
    if (a[0] == Str(row.city)) {
      zipcode = row.zipcode;
      break;
    }
  }
  return CallOutcome::Return(PyValue::Dict({{Str("zipcode"), Str(zipcode)}}));
}

CallOutcome VehicleControlApi::SetNavigation(const std::vector<PyValue>& a) {
  destination_ = a[0];  // stored before the concatenation can fail
  VC_ASSIGN_OR_RAISE(status, Arithmetic(Str("Navigating to "), Arith::kAdd, a[0]));
  return CallOutcome::Return(PyValue::Dict({{Str("status"), std::move(status)}}));
}

CallOutcome VehicleControlApi::CheckTirePressure(const std::vector<PyValue>&) {
  VC_ASSIGN_OR_RAISE(s1, Arithmetic(front_left_tire_pressure_, Arith::kAdd,
                                    front_right_tire_pressure_));
  VC_ASSIGN_OR_RAISE(s2, Arithmetic(s1, Arith::kAdd, rear_left_tire_pressure_));
  VC_ASSIGN_OR_RAISE(s3, Arithmetic(s2, Arith::kAdd, rear_right_tire_pressure_));
  VC_ASSIGN_OR_RAISE(mean, Arithmetic(s3, Arith::kDiv, PyValue::Int(4)));
  VC_ASSIGN_OR_RAISE(healthy, InClosedRange(PyValue::Int(30), mean, PyValue::Int(35)));
  return CallOutcome::Return(PyValue::Dict({
      {Str("frontLeftTirePressure"), front_left_tire_pressure_},
      {Str("frontRightTirePressure"), front_right_tire_pressure_},
      {Str("rearLeftTirePressure"), rear_left_tire_pressure_},
      {Str("rearRightTirePressure"), rear_right_tire_pressure_},
      {Str("healthy_tire_pressure"), PyValue::Bool(healthy)},
      {Str("car_info"), long_context_ ? Constant("CAR_STATUS_METADATA_EXTENSION", Str(""))
                                      : PyValue::Dict()},
  }));
}

CallOutcome VehicleControlApi::FindNearestTireShop(const std::vector<PyValue>&) {
  return CallOutcome::Return(
      PyValue::Dict({{Str("shopLocation"), Str("456 Oakwood Avenue, Rivermist, 83214")}}));
}

#undef VC_ASSIGN_OR_RAISE

std::unique_ptr<ToolApi> NewVehicleControlApi() { return std::make_unique<VehicleControlApi>(); }

}  // namespace envtune
