// VehicleControlAPI: BFCL's vehicle sandbox (engine, doors, climate, brakes, cruise control,
// navigation, tyres), byte-exact with BFCL's Python backend
// (../shared/bfcl/spec/vehicle_control.md).
//
// State values keep their Python types (a scenario's int stays an int, 40 + 10.0 is a float), the
// two random readings come from a CPython random.Random(141053) stream shared in call order, and
// long-context padding comes from SandboxContext::long_context_constants (empty padding when
// absent). Wrong argument types never crash: they give the TypeError/ValueError/KeyError text
// Python would raise. With SandboxContext::augment the two errors of METHOD.md §5.2 carry our
// actionable hints (kVehicleHints); state is never affected by augmentation.
#ifndef ENVTUNE_ENVSERVER_APIS_VEHICLE_CONTROL_H_
#define ENVTUNE_ENVSERVER_APIS_VEHICLE_CONTROL_H_

#include <string>
#include <string_view>
#include <vector>

#include "envserver/py_random.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {

// Augmentation hints (METHOD.md §5.2), one row per condition. `text` may contain the
// placeholders {cityA} / {cityB}, replaced by the Python repr() of the arguments.
struct VehicleHint {
  std::string_view function;
  std::string_view condition;
  std::string_view text;
};
inline constexpr VehicleHint kVehicleHints[] = {
    {"get_outside_temperature_from_weather_com", "always (service is a stub)",
     "The weather.com service is unavailable (error 404) and cannot return a temperature. "
     "Use get_outside_temperature_from_google instead to get the outside temperature."},
    {"estimate_distance", "zipcode pair not in the distance table",
     "distance not found in database: the zipcode pair ({cityA}, {cityB}) is invalid or not "
     "supported. Both arguments must be zipcodes, not city names: verify them and use "
     "get_zipcode_based_on_city to obtain the zipcode of each city."},
};

class VehicleControlApi : public ToolApiBase<VehicleControlApi> {
 public:
  VehicleControlApi();

  std::string_view ClassName() const override { return "VehicleControlAPI"; }
  void LoadScenario(const PyValue& scenario, bool long_context) override;
  PyValue PublicState() const override;

  static const MethodTable& Methods();

  // One handler per BFCL method, in Python definition order; `a` holds the bound arguments.
  CallOutcome StartEngine(const std::vector<PyValue>& a);
  CallOutcome FillFuelTank(const std::vector<PyValue>& a);
  CallOutcome LockDoors(const std::vector<PyValue>& a);
  CallOutcome AdjustClimateControl(const std::vector<PyValue>& a);
  CallOutcome GetOutsideTemperatureFromGoogle(const std::vector<PyValue>& a);
  CallOutcome GetOutsideTemperatureFromWeatherCom(const std::vector<PyValue>& a);
  CallOutcome SetHeadlights(const std::vector<PyValue>& a);
  CallOutcome DisplayCarStatus(const std::vector<PyValue>& a);
  CallOutcome ActivateParkingBrake(const std::vector<PyValue>& a);
  CallOutcome PressBrakePedal(const std::vector<PyValue>& a);
  CallOutcome ReleaseBrakePedal(const std::vector<PyValue>& a);
  CallOutcome SetCruiseControl(const std::vector<PyValue>& a);
  CallOutcome GetCurrentSpeed(const std::vector<PyValue>& a);
  CallOutcome DisplayLog(const std::vector<PyValue>& a);
  CallOutcome EstimateDriveFeasibilityByMileage(const std::vector<PyValue>& a);
  CallOutcome LiterToGallon(const std::vector<PyValue>& a);
  CallOutcome GallonToLiter(const std::vector<PyValue>& a);
  CallOutcome EstimateDistance(const std::vector<PyValue>& a);
  CallOutcome GetZipcodeBasedOnCity(const std::vector<PyValue>& a);
  CallOutcome SetNavigation(const std::vector<PyValue>& a);
  CallOutcome CheckTirePressure(const std::vector<PyValue>& a);
  CallOutcome FindNearestTireShop(const std::vector<PyValue>& a);

  // LONG_WEATHER_EXTENSION in BFCL's original (printed) key order.
  static PyValue LongWeatherExtension();

 private:
  // A long-context constant by name, or `fallback` when the constants are not available.
  PyValue Constant(std::string_view name, PyValue fallback) const;

  PyRandom random_;
  PyValue fuel_level_, battery_voltage_, engine_state_, remaining_unlocked_doors_, door_status_;
  PyValue ac_temperature_, fan_speed_, ac_mode_, humidity_level_, head_light_status_;
  PyValue parking_brake_status_, parking_brake_force_, slope_angle_;
  PyValue brake_pedal_status_, brake_pedal_force_;
  PyValue distance_to_next_vehicle_, cruise_status_, destination_;
  PyValue front_left_tire_pressure_, front_right_tire_pressure_;
  PyValue rear_left_tire_pressure_, rear_right_tire_pressure_;
  bool long_context_ = false;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_VEHICLE_CONTROL_H_
