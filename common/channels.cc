#include "common/channels.h"

#include <random>


#include "absl/strings/str_join.h"
#include "common/metrics.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"

namespace envtune {
namespace {

// Adds `authorization: Bearer <token>` to every call's initial metadata.
class TokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* value) : value_(value) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *value_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const value_;  // owned by the factory, which the channel keeps
};

class TokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(const std::string& token) : value_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(&value_);
  }

 private:
  const std::string value_;
};

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, options.keepalive_time_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options.keepalive_timeout_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, options.initial_reconnect_backoff_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, options.max_reconnect_backoff_ms);
  if (options.round_robin) args.SetLoadBalancingPolicyName("round_robin");
  std::shared_ptr<const Security> security =
      options.security != nullptr ? options.security : ProcessSecurity();
  if (security->tls() && !security->options().tls.server_name.empty()) {
    args.SetSslTargetNameOverride(security->options().tls.server_name);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (security->has_token()) {
    interceptors.push_back(std::make_unique<TokenInterceptorFactory>(security->token()));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      target, security->ChannelCredentials(), args, std::move(interceptors));
}

std::string StaticListTarget(const std::vector<std::string>& addresses) {
  if (addresses.size() == 1) return addresses.front();
  return "ipv4:" + absl::StrJoin(addresses, ",");
}

void SetDeadline(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

void SetWaitForReady(grpc::ClientContext& context, absl::Duration deadline) {
  context.set_wait_for_ready(true);
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
}

absl::Duration Jittered(absl::Duration backoff) {
  thread_local std::minstd_rand engine(std::random_device{}());
  return backoff * std::uniform_real_distribution<double>(0.5, 1.5)(engine);
}

void ConfigureServerBuilder(grpc::ServerBuilder& builder) {
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  // No SO_REUSEPORT (gRPC's default on Linux): a second server on a port in use must fail to
  // start, not share the port (two coordinators once served one address side by side).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Accept the clients' keepalive pings (20 s) without calling them abusive.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Per-method RPC metrics when this process serves /metrics (common/metrics.h).
  AddRpcMetricsInterceptor(builder);
}

}  // namespace envtune
