// Transport security and authentication for every envtune gRPC service, its clients and the
// /metrics endpoint: the one place credentials are built and RPCs are authorised.
//
// Config keys (every role's `--config` file or `key.sub=value` overrides; ReadSecurityOptions):
//   security:
//     tls:
//       cert: ""                   # PEM certificate (chain) this process presents
//       key: ""                    # its PEM private key
//       ca: ""                     # PEM CA bundle: clients verify servers with it, and under
//                                  #   require_client_cert servers verify client certificates
//       require_client_cert: false # servers: mutual TLS (clients without a certificate signed
//                                  #   by `ca` fail the handshake)
//       server_name: ""            # clients: the name checked in server certificates instead of
//                                  #   the dialled host (e.g. when dialling IP addresses)
//     token_file: ""               # cluster token: clients send it, servers require it
//     admin_token_file: ""         # admin token: servers require it for admin RPCs
// TLS is on when any of cert, key and ca is set; then all three are required (one certificate
// serves both directions). Tokens travel as `authorization: Bearer <token>` metadata; without
// TLS they can be sniffed, so plaintext with tokens is only sealed on loopback.
//
// What is authenticated (servers call AuthorizeRpc first in every handler):
//   RpcAccess::kWorker  every envtune RPC that is not admin (coordinator, learner, env server,
//                       read-only status included): with a cluster token configured the call
//                       must carry it (or the admin token); without one it is open (or
//                       authenticated by the mTLS handshake alone under require_client_cert).
//   RpcAccess::kAdmin   SetStage, Pause, Resume, DrainEnvServer: the admin token; disabled when
//                       none is configured. The cluster token is not enough.
// Only the gRPC health service (readiness probes) stays open. Failures: no credentials or an
// unknown token -> UNAUTHENTICATED; a valid cluster token on an admin RPC, or admin RPCs
// disabled -> PERMISSION_DENIED. Tokens are compared in constant time.
#ifndef ENVTUNE_COMMON_SECURITY_H_
#define ENVTUNE_COMMON_SECURITY_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/grpc_status.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"

namespace envtune {

class ConfigReader;

struct TlsOptions {
  std::string cert;  // PEM files (paths)
  std::string key;
  std::string ca;
  bool require_client_cert = false;
  std::string server_name;
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

struct SecurityOptions {
  TlsOptions tls;
  std::string token_file;        // cluster (worker) token
  std::string admin_token_file;  // admin token
};

// Reads the `security:` section. Unknown keys below `security` are errors (recorded in
// `reader`, also for commands that do not Finish() their reader), as are a TLS block without
// all of cert, key and ca.
SecurityOptions ReadSecurityOptions(ConfigReader& reader);

// Loads config file `config_path` ("" = none) with `overrides` and reads only its `security:`
// section (other sections are left to the roles). For commands without a config of their own.
absl::StatusOr<SecurityOptions> LoadSecurityOptions(const std::string& config_path,
                                                    const std::vector<std::string>& overrides);

enum class RpcAccess { kWorker, kAdmin };

// Loaded credentials: PEM contents and tokens read once, checked (the key matches the
// certificate, tokens are printable and at least 16 characters). Immutable and thread-safe.
class Security {
 public:
  // INVALID_ARGUMENT naming the key and file for anything unreadable or malformed.
  static absl::StatusOr<std::shared_ptr<const Security>> Load(const SecurityOptions& options);
  // Plaintext, no tokens: every non-admin RPC open, admin RPCs disabled.
  static std::shared_ptr<const Security> Insecure();

  const SecurityOptions& options() const { return options_; }
  bool tls() const { return options_.tls.enabled(); }
  bool has_token() const { return !token_.empty(); }
  const std::string& token() const { return token_; }

  // One line for logs, e.g. "mutual TLS, cluster token, admin token" or "plaintext, no tokens".
  std::string Describe() const;

  // What servers listen with (TLS, mTLS or plaintext).
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  // What clients dial with. Tokens are added per call by MakeChannel (common/channels.h).
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() const;
  // OK when `context`'s call may proceed with `access` (see the top of this file).
  absl::Status Authorize(const grpc::ServerContextBase& context, RpcAccess access) const;

 private:
  Security() = default;
  SecurityOptions options_;
  std::string cert_pem_, key_pem_, ca_pem_;
  std::string token_, admin_token_;
};

// The process's security, used by MakeChannel, AuthorizeRpc and the servers' listening ports.
// Set once at start-up (before servers start or channels are made), like Metrics::Global();
// Insecure() until then. Thread-safe.
void SetProcessSecurity(std::shared_ptr<const Security> security);
std::shared_ptr<const Security> ProcessSecurity();

// ProcessSecurity()->ServerCredentials(): the credentials every envtune server listens with.
std::shared_ptr<grpc::ServerCredentials> ListeningCredentials();

// ProcessSecurity()->Authorize(context, access). The first thing every handler does.
absl::Status AuthorizeRpc(const grpc::ServerContextBase& context, RpcAccess access);

// a == b without an early exit on the first differing byte.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Reactors for calls refused before they start (by AuthorizeRpc): they finish at once with
// `status` (stream reactors delete themselves when done).
template <typename Request>
class RejectedReadReactor final : public grpc::ServerReadReactor<Request> {
 public:
  explicit RejectedReadReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};
template <typename Response>
class RejectedWriteReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit RejectedWriteReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// The first line of every handler:
//   if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kWorker)) return refused;
// Null when AuthorizeRpc allows the call; otherwise a reactor already finished with its status.
grpc::ServerUnaryReactor* RejectUnlessAuthorized(grpc::CallbackServerContext* context,
                                                 RpcAccess access);
template <typename Request>
grpc::ServerReadReactor<Request>* RejectReadUnlessAuthorized(grpc::CallbackServerContext* context,
                                                             RpcAccess access) {
  absl::Status status = AuthorizeRpc(*context, access);
  return status.ok() ? nullptr : new RejectedReadReactor<Request>(ToGrpcStatus(status));
}
template <typename Response>
grpc::ServerWriteReactor<Response>* RejectWriteUnlessAuthorized(
    grpc::CallbackServerContext* context, RpcAccess access) {
  absl::Status status = AuthorizeRpc(*context, access);
  return status.ok() ? nullptr : new RejectedWriteReactor<Response>(ToGrpcStatus(status));
}

}  // namespace envtune

#endif  // ENVTUNE_COMMON_SECURITY_H_
