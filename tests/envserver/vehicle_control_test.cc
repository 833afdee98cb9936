// Unit tests of the VehicleControlAPI sandbox against ../shared/bfcl/spec/vehicle_control.md:
// every method's success and error branches, Python type-misuse texts, randomness, long-context
// padding and the METHOD.md §5.2 augmentation hints (on and off).
#include "envserver/apis/vehicle_control.h"

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
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A scenario with every door locked and the brake fully pressed: ready to start.
PyValue ReadyScenario() {
  return PyValue::Dict({
      {S("fuelLevel"), F(15.5)},
      {S("batteryVoltage"), F(12.8)},
      {S("doorStatus"), PyValue::Dict({{S("driver"), S("locked")},
                                       {S("passenger"), S("locked")},
                                       {S("rear_left"), S("locked")},
                                       {S("rear_right"), S("locked")}})},
      {S("brakePedalStatus"), S("pressed")},
      {S("brakePedalForce"), F(1000.0)},
  });
}

class VehicleControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    context_.long_context_constants =
        LongContextConstants().is_dict() ? &LongContextConstants() : nullptr;
    Load(PyValue::Dict(), false);
  }

  void Load(const PyValue& scenario, bool long_context) {
    absl::StatusOr<std::unique_ptr<ToolApi>> api = CreateToolApi("VehicleControlAPI");
    ASSERT_TRUE(api.ok()) << api.status();
    api_ = *std::move(api);
    api_->set_context(&context_);
    api_->LoadScenario(scenario, long_context);
  }

  std::string Call(std::string_view method, PyArgs args = {}) {
    return api_->Invoke(method, args).ResultString();
  }
  PyValue State(std::string_view key) const {
    PyValue state = api_->PublicState();
    const PyValue* v = state.dict().Find(key);
    return v != nullptr ? *v : PyValue::Str("<absent>");
  }
  void RequireConstants() {
    if (context_.long_context_constants == nullptr) {
      GTEST_SKIP() << "long_context_constants.json not found under " << SharedDir();
    }
  }

  SandboxContext context_;
  std::unique_ptr<ToolApi> api_;
};

TEST_F(VehicleControlTest, FactoryAndMethodNames) {
  EXPECT_EQ(api_->ClassName(), "VehicleControlAPI");
  std::vector<std::string> names = api_->MethodNames();
  ASSERT_EQ(names.size(), 22u);
  EXPECT_EQ(names.front(), "startEngine");
  EXPECT_EQ(names.back(), "find_nearest_tire_shop");
  EXPECT_EQ(Call("no_such"),
            "Error during execution: 'VehicleControlAPI' object has no attribute 'no_such'");
}

TEST_F(VehicleControlTest, DefaultStateAndPublicKeys) {
  PyValue state = api_->PublicState();
  std::vector<std::string> keys;
  for (const auto& [k, v] : state.dict()) keys.push_back(k.as_str());
  EXPECT_THAT(keys, ::testing::UnorderedElementsAre(
                        "acMode", "acTemperature", "batteryVoltage", "brakePedalStatus",
                        "cruiseStatus", "destination", "distanceToNextVehicle", "doorStatus",
                        "engine_state", "fanSpeed", "frontLeftTirePressure",
                        "frontRightTirePressure", "fuelLevel", "headLightStatus",
                        "humidityLevel", "long_context", "parkingBrakeStatus",
                        "rearLeftTirePressure", "rearRightTirePressure",
                        "remainingUnlockedDoors"));
  EXPECT_EQ(state.JsonDumps({.sort_keys = true}),
            "{\"acMode\": \"auto\", \"acTemperature\": 25.0, \"batteryVoltage\": 12.6, "
            "\"brakePedalStatus\": \"released\", \"cruiseStatus\": \"inactive\", "
            "\"destination\": \"None\", \"distanceToNextVehicle\": 50.0, \"doorStatus\": "
            "{\"driver\": \"unlocked\", \"passenger\": \"unlocked\", \"rear_left\": "
            "\"unlocked\", \"rear_right\": \"unlocked\"}, \"engine_state\": \"stopped\", "
            "\"fanSpeed\": 50, \"frontLeftTirePressure\": 32.0, \"frontRightTirePressure\": "
            "32.0, \"fuelLevel\": 0.0, \"headLightStatus\": \"off\", \"humidityLevel\": 50.0, "
            "\"long_context\": false, \"parkingBrakeStatus\": \"released\", "
            "\"rearLeftTirePressure\": 30.0, \"rearRightTirePressure\": 30.0, "
            "\"remainingUnlockedDoors\": 4}");
}

TEST_F(VehicleControlTest, ScenarioKeysDifferFromAttributesAndDoorsAreRecounted) {
  Load(PyValue::Dict({{S("engineState"), S("running")},
                      {S("parkingBrakeForce"), I(500)},
                      {S("slopeAngle"), F(5.0)},
                      {S("remainingUnlockedDoors"), I(0)},
                      {S("doorStatus"), PyValue::Dict({{S("driver"), S("locked")},
                                                       {S("passenger"), S("unlocked")}})},
                      {S("destination"), PyValue::None()},
                      {S("fanSpeed"), I(70)}}),
       true);
  EXPECT_EQ(State("engine_state"), S("running"));
  EXPECT_EQ(State("remainingUnlockedDoors"), I(3));  // 4 - 1 locked, scenario value ignored
  EXPECT_TRUE(State("destination").is_none());
  EXPECT_EQ(State("long_context"), B(true));
  EXPECT_EQ(State("engineState"), S("<absent>"));
  context_.long_context_constants = nullptr;  // padding unavailable: empty metadata
  EXPECT_EQ(Call("displayCarStatus", Kw({{"option", S("parkingBrake")}})),
            "{\"metadata\": \"\", \"parkingBrakeStatus\": \"released\", \"parkingBrakeForce\": "
            "500, \"slopeAngle\": 5.0}");
}

TEST_F(VehicleControlTest, RandomReadingsShareOneStream) {
  EXPECT_EQ(Call("get_outside_temperature_from_google"),
            "{\"outsideTemperature\": 36.63485703790535}");
  EXPECT_EQ(Call("get_current_speed"), "{\"currentSpeed\": 99.11925428879405}");
  Load(PyValue::Dict(), false);
  EXPECT_EQ(Call("get_current_speed"), "{\"currentSpeed\": 111.92365689097284}");
  // A clone continues the same stream independently.
  std::unique_ptr<ToolApi> clone = api_->Clone();
  EXPECT_EQ(Call("get_current_speed"), clone->Invoke("get_current_speed", {}).ResultString());
}

TEST_F(VehicleControlTest, StartEngineBranches) {
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("START")}})),
            "{\"error\": \"All doors must be locked before starting the engine. Here are the "
            "unlocked doors: driver, passenger, rear_left, rear_right\"}");
  Call("lockDoors", Kw({{"unlock", B(false)}, {"door", PyValue::List({S("driver"), S("rear_left")})}}));
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("START")}})),
            "{\"error\": \"All doors must be locked before starting the engine. Here are the "
            "unlocked doors: passenger, rear_right\"}");
  Call("lockDoors", Kw({{"unlock", B(false)}, {"door", PyValue::List({S("passenger"), S("rear_right")})}}));
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("START")}})),
            "{\"error\": \"Brake pedal needs to be pressed when starting the engine.\"}");
  Call("pressBrakePedal", Kw({{"pedalPosition", F(0.5)}}));
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("START")}})),
            "{\"error\": \"Must press the brake fully before starting the engine.\"}");
  Call("pressBrakePedal", Kw({{"pedalPosition", I(1)}}));  // int 1000 == 1000.0
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("start")}})),
            "{\"error\": \"Invalid ignition mode.\"}");
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("START")}})),
            "{\"engineState\": \"running\", \"fuelLevel\": 0.0, \"batteryVoltage\": 12.6}");
  EXPECT_EQ(State("engine_state"), S("running"));
  // STOP stops first, then fails as an invalid mode.
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("STOP")}})),
            "{\"error\": \"Invalid ignition mode.\"}");
  EXPECT_EQ(State("engine_state"), S("stopped"));
}

TEST_F(VehicleControlTest, StartEngineFuelChecks) {
  PyValue scenario = ReadyScenario();
  scenario.dict().Set("fuelLevel", F(-1.0));
  Load(scenario, false);
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("START")}})),
            "{\"error\": \"Fuel tank is empty.\"}");
  scenario.dict().Set("fuelLevel", S("full"));
  Load(scenario, false);
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("START")}})),
            "Error during execution: '<' not supported between instances of 'str' and 'float'");
  Load(ReadyScenario(), false);
  EXPECT_EQ(Call("startEngine", Kw({{"ignitionMode", S("START")}})),
            "{\"engineState\": \"running\", \"fuelLevel\": 15.5, \"batteryVoltage\": 12.8}");
}

TEST_F(VehicleControlTest, FillFuelTank) {
  EXPECT_EQ(Call("fillFuelTank", Kw({{"fuelAmount", I(-1)}})),
            "{\"error\": \"Fuel amount cannot be negative.\"}");
  EXPECT_EQ(Call("fillFuelTank", Kw({{"fuelAmount", F(50.5)}})),
            "{\"error\": \"Cannot fill gas above the tank capacity.\"}");
  EXPECT_EQ(Call("fillFuelTank", Kw({{"fuelAmount", I(40)}})), "{\"fuelLevel\": 40.0}");
  EXPECT_EQ(Call("fillFuelTank", Kw({{"fuelAmount", I(10)}})), "{\"fuelLevel\": 50.0}");
  EXPECT_EQ(Call("fillFuelTank", Kw({{"fuelAmount", S("5")}})),
            "Error during execution: '<' not supported between instances of 'str' and 'int'");
  EXPECT_EQ(Call("fillFuelTank", Kw({{"fuelAmount", PyValue::None()}})),
            "Error during execution: '<' not supported between instances of 'NoneType' and "
            "'int'");
  // Int levels stay ints; a negative level can give the "min level" error.
  Load(PyValue::Dict({{S("fuelLevel"), I(10)}}), false);
  EXPECT_EQ(Call("fillFuelTank", Kw({{"fuelAmount", B(true)}})), "{\"fuelLevel\": 11}");
  Load(PyValue::Dict({{S("fuelLevel"), F(-5.0)}}), false);
  EXPECT_EQ(Call("fillFuelTank", Kw({{"fuelAmount", I(2)}})),
            "{\"error\": \"Fuel tank is empty. Min fuel level is 0 gallons.\"}");
  EXPECT_EQ(Call("fillFuelTank"),
            "Error during execution: VehicleControlAPI.fillFuelTank() missing 1 required "
            "positional argument: 'fuelAmount'");
}

TEST_F(VehicleControlTest, LockDoors) {
  EXPECT_EQ(Call("lockDoors", Kw({{"unlock", B(false)}, {"door", PyValue::List({S("driver"), S("driver")})}})),
            "{\"lockStatus\": \"locked\", \"remainingUnlockedDoors\": 3}");
  EXPECT_EQ(Call("lockDoors", Kw({{"unlock", I(1)}, {"door", PyValue::List({S("driver"), S("passenger")})}})),
            "{\"lockStatus\": \"unlocked\", \"remainingUnlockedDoors\": 4}");
  // KeyError after the earlier doors were applied.
  EXPECT_EQ(Call("lockDoors", Kw({{"unlock", B(false)},
                                  {"door", PyValue::List({S("rear_left"), S("trunk"), S("driver")})}})),
            "Error during execution: 'trunk'");
  EXPECT_EQ(State("remainingUnlockedDoors"), I(3));
  EXPECT_EQ(State("doorStatus").dict().Find("rear_left")->as_str(), "locked");
  EXPECT_EQ(State("doorStatus").dict().Find("driver")->as_str(), "unlocked");
  // A string is iterated character by character.
  EXPECT_EQ(Call("lockDoors", Kw({{"unlock", B(false)}, {"door", S("driver")}})),
            "Error during execution: 'd'");
  EXPECT_EQ(Call("lockDoors", Kw({{"unlock", B(false)}, {"door", I(5)}})),
            "Error during execution: 'int' object is not iterable");
  EXPECT_EQ(Call("lockDoors", Kw({{"unlock", B(false)}, {"door", PyValue::List({PyValue::List()})}})),
            "Error during execution: unhashable type: 'list'");
  EXPECT_EQ(Call("lockDoors", Kw({{"unlock", B(false)}, {"door", PyValue::List()}})),
            "{\"lockStatus\": \"locked\", \"remainingUnlockedDoors\": 3}");
}

TEST_F(VehicleControlTest, AdjustClimateControl) {
  EXPECT_EQ(Call("adjustClimateControl", Kw({{"temperature", I(20)}, {"fanSpeed", I(101)}})),
            "{\"error\": \"Fan speed must be between 0 and 100.\"}");
  EXPECT_EQ(Call("adjustClimateControl",
                 Kw({{"temperature", I(72)}, {"unit", S("fahrenheit")}, {"fanSpeed", I(70)},
                     {"mode", S("cool")}})),
            "{\"currentACTemperature\": 72, \"climateMode\": \"cool\", \"humidityLevel\": 50.0}");
  EXPECT_EQ(State("acTemperature"), F((72 - 32) * 5 / 9.0));
  EXPECT_EQ(State("acTemperature").Repr(), "22.22222222222222");
  EXPECT_EQ(State("fanSpeed"), I(70));
  // Omitted fanSpeed/mode reset to their defaults; any other unit is Celsius.
  EXPECT_EQ(Call("adjustClimateControl", Kw({{"temperature", F(18.5)}, {"unit", S("kelvin")}})),
            "{\"currentACTemperature\": 18.5, \"climateMode\": \"auto\", \"humidityLevel\": 50.0}");
  EXPECT_EQ(State("fanSpeed"), I(50));
  EXPECT_EQ(State("acMode"), S("auto"));
  EXPECT_EQ(Call("adjustClimateControl", Kw({{"temperature", I(20)}, {"fanSpeed", S("high")}})),
            "Error during execution: '<=' not supported between instances of 'int' and 'str'");
  // The raw temperature is stored before the Fahrenheit conversion fails.
  EXPECT_EQ(Call("adjustClimateControl", Kw({{"temperature", S("hot")}, {"unit", S("fahrenheit")}})),
            "Error during execution: unsupported operand type(s) for -: 'str' and 'int'");
  EXPECT_EQ(State("acTemperature"), S("hot"));
  PyArgs positional;
  positional.positional = {I(1), S("celsius"), I(2), S("heat"), I(5)};
  EXPECT_EQ(Call("adjustClimateControl", positional),
            "Error during execution: VehicleControlAPI.adjustClimateControl() takes from 2 to 5 "
            "positional arguments but 6 were given");
}

TEST_F(VehicleControlTest, WeatherComAugmentation) {
  EXPECT_EQ(Call("get_outside_temperature_from_weather_com"), "{\"error\": 404}");
  context_.augment = true;
  CallOutcome out = api_->Invoke("get_outside_temperature_from_weather_com", {});
  ASSERT_FALSE(out.raised());
  ASSERT_TRUE(out.value.is_dict());
  const PyValue* error = out.value.dict().Find("error");
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(out.value.dict().size(), 1u);
  EXPECT_THAT(error->as_str(), HasSubstr("get_outside_temperature_from_google"));
  EXPECT_THAT(error->as_str(), HasSubstr("unavailable"));
  // No random draw happened: the Google reading is still the first one of the stream.
  EXPECT_EQ(Call("get_outside_temperature_from_google"),
            "{\"outsideTemperature\": 36.63485703790535}");
}

TEST_F(VehicleControlTest, Headlights) {
  EXPECT_EQ(Call("setHeadlights", Kw({{"mode", S("high")}})),
            "{\"error\": \"Invalid headlight mode.\"}");
  EXPECT_EQ(Call("setHeadlights", Kw({{"mode", S("on")}})), "{\"headlightStatus\": \"on\"}");
  EXPECT_EQ(State("headLightStatus"), S("on"));
  EXPECT_EQ(Call("setHeadlights", Kw({{"mode", S("auto")}})), "{\"headlightStatus\": \"off\"}");
  EXPECT_EQ(State("headLightStatus"), S("off"));
}

TEST_F(VehicleControlTest, DisplayCarStatusOptions) {
  const std::pair<const char*, const char*> kCases[] = {
      {"fuel", "{\"fuelLevel\": 0.0}"},
      {"battery", "{\"batteryVoltage\": 12.6}"},
      {"doors", "{\"doorStatus\": {\"driver\": \"unlocked\", \"passenger\": \"unlocked\", "
                "\"rear_left\": \"unlocked\", \"rear_right\": \"unlocked\"}}"},
      {"climate", "{\"currentACTemperature\": 25.0, \"fanSpeed\": 50, \"climateMode\": \"auto\", "
                  "\"humidityLevel\": 50.0}"},
      {"headlights", "{\"headlightStatus\": \"off\"}"},
      {"parkingBrake", "{\"parkingBrakeStatus\": \"released\", \"parkingBrakeForce\": 0.0, "
                       "\"slopeAngle\": 0.0}"},
      {"brakePedal", "{\"brakePedalStatus\": \"released\", \"brakePedalForce\": 0.0}"},
      {"engine", "{\"engineState\": \"stopped\"}"},
      {"brakePadle", "{\"error\": \"Invalid option\"}"},
  };
  for (const auto& [option, expected] : kCases) {
    EXPECT_EQ(Call("displayCarStatus", Kw({{"option", S(option)}})), expected) << option;
  }
  Call("pressBrakePedal", Kw({{"pedalPosition", I(1)}}));
  EXPECT_EQ(Call("displayCarStatus", Kw({{"option", S("brakePedal")}})),
            "{\"brakePedalStatus\": \"pressed\", \"brakePedalForce\": 1000}");
}

TEST_F(VehicleControlTest, ParkingBrake) {
  EXPECT_EQ(Call("activateParkingBrake", Kw({{"mode", S("on")}})), "{\"error\": \"Invalid mode\"}");
  EXPECT_EQ(Call("activateParkingBrake", Kw({{"mode", S("engage")}})),
            "{\"parkingBrakeStatus\": \"engaged\", \"_parkingBrakeForce\": 500.0, "
            "\"_slopeAngle\": 10.0}");
  EXPECT_EQ(State("parkingBrakeStatus"), S("engaged"));
  EXPECT_EQ(Call("activateParkingBrake", Kw({{"mode", S("release")}})),
            "{\"parkingBrakeStatus\": \"released\", \"_parkingBrakeForce\": 0.0, "
            "\"_slopeAngle\": 10.0}");
  EXPECT_EQ(Call("displayCarStatus", Kw({{"option", S("parkingBrake")}})),
            "{\"parkingBrakeStatus\": \"released\", \"parkingBrakeForce\": 0.0, "
            "\"slopeAngle\": 10.0}");
}

TEST_F(VehicleControlTest, BrakePedal) {
  EXPECT_EQ(Call("pressBrakePedal", Kw({{"pedalPosition", F(1.5)}})),
            "{\"error\": \"Pedal position must be between 0 and 1.\"}");
  EXPECT_EQ(Call("pressBrakePedal", Kw({{"pedalPosition", F(0.5)}})),
            "{\"brakePedalStatus\": \"pressed\", \"brakePedalForce\": 500.0}");
  EXPECT_EQ(State("brakePedalStatus"), S("pressed"));
  EXPECT_EQ(Call("pressBrakePedal", Kw({{"pedalPosition", I(0)}})),
            "{\"brakePedalStatus\": \"released\", \"brakePedalForce\": 0.0}");
  EXPECT_EQ(Call("pressBrakePedal", Kw({{"pedalPosition", I(1)}})),
            "{\"brakePedalStatus\": \"pressed\", \"brakePedalForce\": 1000.0}");
  EXPECT_EQ(Call("releaseBrakePedal"),
            "{\"brakePedalStatus\": \"released\", \"brakePedalForce\": 0.0}");
  EXPECT_EQ(State("brakePedalStatus"), S("released"));
  EXPECT_EQ(Call("pressBrakePedal", Kw({{"pedalPosition", S("full")}})),
            "Error during execution: '<=' not supported between instances of 'int' and 'str'");
}

TEST_F(VehicleControlTest, CruiseControl) {
  EXPECT_EQ(Call("setCruiseControl",
                 Kw({{"speed", I(65)}, {"activate", B(true)}, {"distanceToNextVehicle", I(100)}})),
            "{\"error\": \"Start the engine before activating the cruise control.\"}");
  EXPECT_EQ(Call("setCruiseControl",
                 Kw({{"speed", S("fast")}, {"activate", B(true)}, {"distanceToNextVehicle", I(1)}})),
            "Error during execution: could not convert string to float: 'fast'");
  EXPECT_EQ(Call("setCruiseControl", Kw({{"speed", I(1)}, {"activate", B(true)},
                                         {"distanceToNextVehicle", PyValue::None()}})),
            "Error during execution: float() argument must be a string or a real number, not "
            "'NoneType'");
  Load(ReadyScenario(), false);
  Call("startEngine", Kw({{"ignitionMode", S("START")}}));
  // Invalid speed: the distance is stored anyway.
  EXPECT_EQ(Call("setCruiseControl", Kw({{"speed", F(62.5)}, {"activate", B(true)},
                                         {"distanceToNextVehicle", I(80)}})),
            "{\"error\": \"Invalid speed\"}");
  EXPECT_EQ(State("distanceToNextVehicle"), F(80.0));
  EXPECT_EQ(State("cruiseStatus"), S("inactive"));
  EXPECT_EQ(Call("setCruiseControl", Kw({{"speed", I(125)}, {"activate", B(true)},
                                         {"distanceToNextVehicle", I(80)}})),
            "{\"error\": \"Invalid speed\"}");
  EXPECT_EQ(Call("setCruiseControl",
                 Kw({{"speed", I(65)}, {"activate", B(true)}, {"distanceToNextVehicle", I(100)}})),
            "{\"cruiseStatus\": \"active\", \"currentSpeed\": 65.0, \"distanceToNextVehicle\": "
            "100.0}");
  EXPECT_EQ(State("cruiseStatus"), S("active"));
  EXPECT_EQ(Call("setCruiseControl", Kw({{"speed", S(" 1_2.5 ")}, {"activate", B(false)},
                                         {"distanceToNextVehicle", S("3e1")}})),
            "{\"cruiseStatus\": \"inactive\", \"currentSpeed\": 12.5, \"distanceToNextVehicle\": "
            "30.0}");
  EXPECT_EQ(State("cruiseStatus"), S("inactive"));
  EXPECT_EQ(Call("setCruiseControl", Kw({{"speed", S("nan")}, {"activate", B(true)},
                                         {"distanceToNextVehicle", I(1)}})),
            "{\"error\": \"Invalid speed\"}");
}

TEST_F(VehicleControlTest, SmallHelpers) {
  EXPECT_EQ(Call("display_log", Kw({{"messages", PyValue::List({S("a"), S("b")})}})),
            "{\"log\": [\"a\", \"b\"]}");
  EXPECT_EQ(Call("estimate_drive_feasibility_by_mileage", Kw({{"distance", I(1)}})),
            "{\"canDrive\": false}");
  EXPECT_EQ(Call("estimate_drive_feasibility_by_mileage", Kw({{"distance", I(0)}})),
            "{\"canDrive\": true}");
  EXPECT_EQ(Call("estimate_drive_feasibility_by_mileage", Kw({{"distance", S("far")}})),
            "Error during execution: '<' not supported between instances of 'float' and 'str'");
  EXPECT_EQ(Call("liter_to_gallon", Kw({{"liter", F(20.0)}})), "{\"gallon\": 5.283440000000001}");
  EXPECT_EQ(Call("liter_to_gallon", Kw({{"liter", I(166)}})), "{\"gallon\": 43.852552}");
  EXPECT_EQ(Call("gallon_to_liter", Kw({{"gallon", I(30)}})), "{\"liter\": 113.56230000000001}");
  EXPECT_EQ(Call("gallon_to_liter", Kw({{"gallon", I(10)}})), "{\"liter\": 37.8541}");
  EXPECT_EQ(Call("gallon_to_liter", Kw({{"gallon", S("10")}})),
            "Error during execution: can't multiply sequence by non-int of type 'float'");
  EXPECT_EQ(Call("gallon_to_liter", Kw({{"gallon", PyValue::None()}})),
            "Error during execution: unsupported operand type(s) for *: 'NoneType' and 'float'");
  EXPECT_EQ(Call("find_nearest_tire_shop"),
            "{\"shopLocation\": \"456 Oakwood Avenue, Rivermist, 83214\"}");
}

TEST_F(VehicleControlTest, ZipcodesAndDistances) {
  EXPECT_EQ(Call("get_zipcode_based_on_city", Kw({{"city", S("Crescent Hollow")}})),
            "{\"zipcode\": \"69238\"}");
  EXPECT_EQ(Call("get_zipcode_based_on_city", Kw({{"city", S("rivermist")}})),
            "{\"zipcode\": \"00000\"}");
  EXPECT_EQ(Call("estimate_distance", Kw({{"cityA", S("83214")}, {"cityB", S("74532")}})),
            "{\"distance\": 750.0}");
  EXPECT_EQ(Call("estimate_distance", Kw({{"cityA", S("08540")}, {"cityB", S("94016")}})),
            "{\"distance\": 1950.0}");
  EXPECT_EQ(Call("estimate_distance", Kw({{"cityA", I(94016)}, {"cityB", S("08540")}})),
            "{\"error\": \"distance not found in database.\"}");
}

TEST_F(VehicleControlTest, EstimateDistanceAugmentation) {
  context_.augment = true;
  const PyValue before = api_->PublicState();
  EXPECT_EQ(Call("estimate_distance", Kw({{"cityA", S("83214")}, {"cityB", S("74532")}})),
            "{\"distance\": 750.0}");
  CallOutcome out =
      api_->Invoke("estimate_distance", Kw({{"cityA", S("Rivermist")}, {"cityB", S("74532")}}));
  ASSERT_FALSE(out.raised());
  const PyValue* error = out.value.dict().Find("error");
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(out.value.dict().size(), 1u);
  EXPECT_THAT(error->as_str(), HasSubstr("get_zipcode_based_on_city"));
  EXPECT_THAT(error->as_str(), HasSubstr("('Rivermist', '74532')"));
  EXPECT_NE(error->as_str(), "distance not found in database.");
  EXPECT_EQ(api_->PublicState(), before);  // augmentation never changes state
  context_.augment = false;
  EXPECT_EQ(Call("estimate_distance", Kw({{"cityA", S("Rivermist")}, {"cityB", S("74532")}})),
            "{\"error\": \"distance not found in database.\"}");
}

TEST_F(VehicleControlTest, SetNavigationStoresBeforeFailing) {
  EXPECT_EQ(Call("set_navigation", Kw({{"destination", S("123 Main St, Rivermist")}})),
            "{\"status\": \"Navigating to 123 Main St, Rivermist\"}");
  EXPECT_EQ(Call("set_navigation", Kw({{"destination", I(5)}})),
            "Error during execution: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(State("destination"), I(5));
}

TEST_F(VehicleControlTest, TirePressure) {
  EXPECT_EQ(Call("check_tire_pressure"),
            "{\"frontLeftTirePressure\": 32.0, \"frontRightTirePressure\": 32.0, "
            "\"rearLeftTirePressure\": 30.0, \"rearRightTirePressure\": 30.0, "
            "\"healthy_tire_pressure\": true, \"car_info\": {}}");
  Load(PyValue::Dict({{S("frontLeftTirePressure"), I(22)}, {S("rearRightTirePressure"), I(28)}}),
       false);
  EXPECT_EQ(Call("check_tire_pressure"),
            "{\"frontLeftTirePressure\": 22, \"frontRightTirePressure\": 32.0, "
            "\"rearLeftTirePressure\": 30.0, \"rearRightTirePressure\": 28, "
            "\"healthy_tire_pressure\": false, \"car_info\": {}}");
}

TEST_F(VehicleControlTest, WeatherTableMatchesConstants) {
  RequireConstants();
  if (IsSkipped()) return;
  const PyValue* weather = context_.long_context_constants->dict().Find("LONG_WEATHER_EXTENSION");
  ASSERT_NE(weather, nullptr);
  EXPECT_EQ(VehicleControlApi::LongWeatherExtension(), *weather);
  // Printed order is the original one, not the file's sorted order.
  EXPECT_THAT(VehicleControlApi::LongWeatherExtension().JsonDumps(),
              StartsWith("{\"-1_day\": {\"windSpeed\": 15.0, \"humidity\": 75.0, "
                         "\"precipitation\": 5.0, \"uvIndex\": 6, \"visibility\": 8.0, "
                         "\"airPressure\": 1010.0, \"dewPoint\": 10.0}, \"-2_day\": "));
}

TEST_F(VehicleControlTest, LongContextPadding) {
  RequireConstants();
  if (IsSkipped()) return;
  const PyDict& constants = context_.long_context_constants->dict();
  const PyValue& metadata = *constants.Find("CAR_STATUS_METADATA_EXTENSION");
  const PyValue& instruction = *constants.Find("PARKING_BRAKE_INSTRUCTION");
  const PyValue& cities = *constants.Find("INTERMEDIARY_CITIES");
  for (bool augment : {false, true}) {
    context_.augment = augment;
    Load(PyValue::Dict(), true);
    CallOutcome weather = api_->Invoke("get_outside_temperature_from_google", {});
    ASSERT_EQ(weather.value.dict().size(), 16u);
    EXPECT_EQ(weather.value.dict().entries().back().first, S("outsideTemperature"));
    EXPECT_EQ(weather.value.dict().entries().back().second, F(36.63485703790535));

    CallOutcome status = api_->Invoke("displayCarStatus", Kw({{"option", S("fuel")}}));
    ASSERT_EQ(status.value.dict().size(), 2u);
    EXPECT_EQ(status.value.dict().entries()[0].first, S("metadata"));
    EXPECT_EQ(status.value.dict().entries()[0].second, metadata);

    CallOutcome brake = api_->Invoke("activateParkingBrake", Kw({{"mode", S("engage")}}));
    ASSERT_EQ(brake.value.dict().size(), 4u);
    EXPECT_EQ(brake.value.dict().entries()[0].second, instruction);

    for (const char* b : {"74532", "99999"}) {
      CallOutcome dist =
          api_->Invoke("estimate_distance", Kw({{"cityA", S("83214")}, {"cityB", S(b)}}));
      ASSERT_EQ(dist.value.dict().size(), 2u);
      EXPECT_EQ(dist.value.dict().entries()[1].first, S("intermediaryCities"));
      EXPECT_EQ(dist.value.dict().entries()[1].second, cities);
      EXPECT_EQ(dist.value.dict().entries()[0].first.as_str(),
                std::string(b) == "74532" ? "distance" : "error");
      if (std::string(b) != "74532") {
        EXPECT_EQ(dist.value.dict().entries()[0].second == S("distance not found in database."),
                  !augment);
      }
    }

    CallOutcome tires = api_->Invoke("check_tire_pressure", {});
    EXPECT_EQ(*tires.value.dict().Find("car_info"), metadata);
    EXPECT_EQ(State("long_context"), B(true));
  }
}

// Differential replay against cases produced by BFCL's Python class (one JSON object a line:
// scenario, long_context, calls [{method, args, kwargs}], results, state_json = json.dumps(public
// state, sort_keys=True)). Optional: runs only
// when ENVTUNE_VEHICLE_DIFF_CASES names such a file.
TEST(VehicleControlDifferentialTest, MatchesPythonCases) {
  const char* path = std::getenv("ENVTUNE_VEHICLE_DIFF_CASES");
  if (path == nullptr) GTEST_SKIP() << "ENVTUNE_VEHICLE_DIFF_CASES not set";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  SandboxContext context;
  context.long_context_constants =
      LongContextConstants().is_dict() ? &LongContextConstants() : nullptr;
  std::string line;
  int cases = 0, calls = 0, mismatches = 0;
  while (std::getline(in, line)) {
    absl::StatusOr<PyValue> c = PyValue::FromJson(line);
    ASSERT_TRUE(c.ok()) << c.status();
    const PyDict& d = c->dict();
    std::unique_ptr<ToolApi> api = NewVehicleControlApi();
    api->set_context(&context);
    api->LoadScenario(*d.Find("scenario"), d.Find("long_context")->as_bool());
    const PyList& call_list = d.Find("calls")->items();
    const PyList& results = d.Find("results")->items();
    for (size_t i = 0; i < call_list.size(); ++i) {
      const PyDict& call = call_list[i].dict();
      PyArgs args;
      args.positional = call.Find("args")->items();
      for (const PyValue& kv : call.Find("kwargs")->items()) {
        args.keywords.emplace_back(kv.items()[0].as_str(), kv.items()[1]);
      }
      std::string got = api->Invoke(call.Find("method")->as_str(), args).ResultString();
      ++calls;
      if (got != results[i].as_str()) {
        ++mismatches;
        ADD_FAILURE() << "case " << cases << " call " << i << " "
                      << call.Find("method")->as_str() << "\n got: " << got.substr(0, 300)
                      << "\nwant: " << results[i].as_str().substr(0, 300);
      }
    }
    EXPECT_EQ(api->PublicState().JsonDumps({.sort_keys = true}),
              d.Find("state_json")->as_str())
        << "case " << cases;
    ++cases;
  }
  std::printf("differential: %d cases, %d calls, %d mismatches\n", cases, calls, mismatches);
  EXPECT_GT(cases, 0);
}

}  // namespace
}  // namespace envtune
