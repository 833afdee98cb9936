// The one place gRPC channels and server builders are configured: message size limits and
// keepalive arguments that suit both ends, and client deadlines.
//
// Targets use gRPC's own resolver syntax, so one channel can span many replicas:
//   "127.0.0.1:5001"                      one server
//   "ipv4:127.0.0.1:5001,127.0.0.1:5002"  a static list
//   "dns:///envserver.svc:5001"           every address the name resolves to
// and `round_robin` load balancing spreads requests over them.
#ifndef ENVTUNE_COMMON_CHANNELS_H_
#define ENVTUNE_COMMON_CHANNELS_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server_builder.h"

namespace envtune {

// Largest message any envtune service sends or accepts (weights travel in chunks below it).
inline constexpr int kMaxMessageBytes = 64 << 20;

struct ChannelOptions {
  bool round_robin = true;              // spread calls over every resolved address
  int keepalive_time_ms = 20'000;
  int keepalive_timeout_ms = 10'000;
};

// An insecure channel to `target` (see the syntax above). Never fails: connection errors show
// up as UNAVAILABLE on the first call.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options = {});

// "ipv4:a:1,b:2" for a list of host:port addresses (one address is returned as is).
std::string StaticListTarget(const std::vector<std::string>& addresses);

// Sets a deadline `timeout` from now on `context`.
void SetDeadline(grpc::ClientContext& context, std::chrono::milliseconds timeout);

// Applies envtune's server-side limits and keepalive policy to a builder.
void ConfigureServerBuilder(grpc::ServerBuilder& builder);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_CHANNELS_H_
