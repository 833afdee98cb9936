// Factories of the eight BFCL sandbox classes. Each is defined in its own file in this folder
// and listed once in all.cc's table; everything else reaches them through CreateToolApi().
#ifndef ENVTUNE_ENVSERVER_APIS_APIS_H_
#define ENVTUNE_ENVSERVER_APIS_APIS_H_

#include <memory>

#include "envserver/tool_api.h"

namespace envtune {

std::unique_ptr<ToolApi> NewGorillaFileSystem();
std::unique_ptr<ToolApi> NewMathApi();
std::unique_ptr<ToolApi> NewMessageApi();
std::unique_ptr<ToolApi> NewTwitterApi();
std::unique_ptr<ToolApi> NewTicketApi();
std::unique_ptr<ToolApi> NewTradingBot();
std::unique_ptr<ToolApi> NewTravelApi();
std::unique_ptr<ToolApi> NewVehicleControlApi();

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_APIS_H_
