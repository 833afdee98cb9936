// The one place gRPC channels and server builders are configured: message size limits and
// keepalive arguments that suit both ends, client deadlines, and transport security (TLS and
// the cluster token, common/security.h).
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

#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server_builder.h"
#include "common/security.h"

namespace envtune {

// Largest message any envtune service sends or accepts (weights travel in chunks below it).
inline constexpr int kMaxMessageBytes = 64 << 20;

struct ChannelOptions {
  bool round_robin = true;              // spread calls over every resolved address
  int keepalive_time_ms = 20'000;
  int keepalive_timeout_ms = 10'000;
  // Reconnecting to a peer that went away: gRPC's backoff between connection attempts starts
  // at initial and grows to max (gRPC's own defaults are 1 s and 120 s; a restarted peer would
  // then be found only up to two minutes after it is back). GRPC_ARG_MIN_RECONNECT_BACKOFF_MS
  // is left alone: gRPC uses it as the minimum connect timeout (20 s), and a short one fails
  // TLS handshakes on a loaded machine.
  int initial_reconnect_backoff_ms = 250;
  int max_reconnect_backoff_ms = 2'000;
  // TLS credentials and the token sent with every call; null = ProcessSecurity().
  std::shared_ptr<const Security> security = nullptr;
};

// A channel to `target` (see the syntax above) with `options.security` (or the process's):
// TLS when it has TLS, and `authorization: Bearer <token>` on every call when it has a cluster
// token. Never fails: connection and handshake errors show up as UNAVAILABLE on the first call.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options = {});

// "ipv4:a:1,b:2" for a list of host:port addresses (one address is returned as is).
std::string StaticListTarget(const std::vector<std::string>& addresses);

// Sets a deadline `timeout` from now on `context`.
void SetDeadline(grpc::ClientContext& context, std::chrono::milliseconds timeout);

// For a call that should outlast a peer's restart: the call waits for the channel to connect
// (gRPC wait_for_ready) instead of failing at once with UNAVAILABLE while the peer is down, up
// to `deadline` from now (the channel reconnects within max_reconnect_backoff_ms once the peer
// is back).
void SetWaitForReady(grpc::ClientContext& context, absl::Duration deadline);

// `backoff` x a uniform factor in [0.5, 1.5): the jitter of hand-made retry loops, so clients
// that failed together do not retry together.
absl::Duration Jittered(absl::Duration backoff);

// Applies envtune's server-side limits and keepalive policy to a builder. Servers listen with
// ListeningCredentials() (common/security.h) and their handlers call AuthorizeRpc first.
void ConfigureServerBuilder(grpc::ServerBuilder& builder);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_CHANNELS_H_
