#include "common/security.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "common/config_sections.h"
#include "common/file.h"

namespace envtune {
namespace {

constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxTokenLength = 4096;
constexpr char kBearer[] = "Bearer ";

absl::StatusOr<std::string> ReadKeyFile(const std::string& key, const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": cannot read '", path, "'"));
  }
  return *std::move(text);
}

// A token file's contents without surrounding whitespace; printable ASCII (gRPC metadata).
absl::StatusOr<std::string> ReadToken(const std::string& key, const std::string& path) {
  absl::StatusOr<std::string> text = ReadKeyFile(key, path);
  if (!text.ok()) return text.status();
  std::string token(absl::StripAsciiWhitespace(*text));
  if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": the token in '", path, "' must have ",
                                                   kMinTokenLength, " to ", kMaxTokenLength,
                                                   " characters (has ", token.size(), ")"));
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          key, ": the token in '", path, "' must be printable ASCII without spaces"));
    }
  }
  return token;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioDeleter> MemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::unique_ptr<X509, X509Deleter> FirstCertificate(const std::string& pem) {
  auto bio = MemBio(pem);
  if (bio == nullptr) return nullptr;
  return std::unique_ptr<X509, X509Deleter>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// The certificate and key parse as PEM and belong together; the CA bundle holds a certificate.
absl::Status CheckPem(const TlsOptions& tls, const std::string& cert_pem, const std::string& key_pem,
                      const std::string& ca_pem) {
  std::unique_ptr<X509, X509Deleter> cert = FirstCertificate(cert_pem);
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("security.tls.cert: '", tls.cert, "' holds no PEM certificate"));
  }
  auto key_bio = MemBio(key_pem);
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(
      key_bio == nullptr ? nullptr : PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "security.tls.key: '", tls.key, "' holds no PEM private key (or it is encrypted)"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("security.tls.key: '", tls.key,
                                                   "' is not the key of the certificate in '",
                                                   tls.cert, "'"));
  }
  if (FirstCertificate(ca_pem) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("security.tls.ca: '", tls.ca, "' holds no PEM certificate"));
  }
  return absl::OkStatus();
}

absl::Mutex g_security_mu(absl::kConstInit);
std::shared_ptr<const Security>& ProcessSecurityLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_security_mu) {
  static auto* security = new std::shared_ptr<const Security>(Security::Insecure());  // never freed
  return *security;
}

}  // namespace

SecurityOptions ReadSecurityOptions(ConfigReader& reader) {
  SecurityOptions o;
  o.tls.cert = reader.Get<std::string>("security.tls.cert", "");
  o.tls.key = reader.Get<std::string>("security.tls.key", "");
  o.tls.ca = reader.Get<std::string>("security.tls.ca", "");
  o.tls.require_client_cert = reader.Get<bool>("security.tls.require_client_cert", false);
  o.tls.server_name = reader.Get<std::string>("security.tls.server_name", "");
  o.token_file = reader.Get<std::string>("security.token_file", "");
  o.admin_token_file = reader.Get<std::string>("security.admin_token_file", "");
  if (o.tls.enabled() && (o.tls.cert.empty() || o.tls.key.empty() || o.tls.ca.empty())) {
    reader.AddError("security.tls: cert, key and ca are needed together (TLS is on when any is set)");
  }
  if (!o.tls.enabled() && o.tls.require_client_cert) {
    reader.AddError("security.tls.require_client_cert: needs security.tls.cert, key and ca");
  }
  if (!o.tls.enabled() && !o.tls.server_name.empty()) {
    reader.AddError("security.tls.server_name: needs security.tls.cert, key and ca");
  }
  return o;
}

absl::StatusOr<SecurityOptions> LoadSecurityOptions(const std::string& config_path,
                                                    const std::vector<std::string>& overrides) {
  absl::StatusOr<Config> config = Config::Load(config_path, overrides);
  if (!config.ok()) return config.status();
  ConfigReader reader(*config);
  SecurityOptions options = ReadSecurityOptions(reader);
  DeclareOtherSections(reader, *config, {"security"});
  if (absl::Status s = reader.Finish(); !s.ok()) return s;
  return options;
}

absl::StatusOr<std::shared_ptr<const Security>> Security::Load(const SecurityOptions& options) {
  std::shared_ptr<Security> s(new Security());
  s->options_ = options;
  const TlsOptions& tls = options.tls;
  if (tls.enabled()) {
    if (tls.cert.empty() || tls.key.empty() || tls.ca.empty()) {
      return absl::InvalidArgumentError(
          "security.tls: cert, key and ca are needed together (TLS is on when any is set)");
    }
    absl::StatusOr<std::string> cert = ReadKeyFile("security.tls.cert", tls.cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadKeyFile("security.tls.key", tls.key);
    if (!key.ok()) return key.status();
    absl::StatusOr<std::string> ca = ReadKeyFile("security.tls.ca", tls.ca);
    if (!ca.ok()) return ca.status();
    if (absl::Status pem = CheckPem(tls, *cert, *key, *ca); !pem.ok()) return pem;
    s->cert_pem_ = *std::move(cert);
    s->key_pem_ = *std::move(key);
    s->ca_pem_ = *std::move(ca);
  } else if (tls.require_client_cert || !tls.server_name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        tls.require_client_cert ? "security.tls.require_client_cert"
                                : "security.tls.server_name",
        ": needs security.tls.cert, key and ca"));
  }
  if (!options.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadToken("security.token_file", options.token_file);
    if (!token.ok()) return token.status();
    s->token_ = *std::move(token);
  }
  if (!options.admin_token_file.empty()) {
    absl::StatusOr<std::string> token =
        ReadToken("security.admin_token_file", options.admin_token_file);
    if (!token.ok()) return token.status();
    s->admin_token_ = *std::move(token);
  }
  if (!s->token_.empty() && ConstantTimeEquals(s->token_, s->admin_token_)) {
    return absl::InvalidArgumentError(
        "security.admin_token_file: the admin token must differ from the cluster token");
  }
  return std::shared_ptr<const Security>(std::move(s));
}

std::shared_ptr<const Security> Security::Insecure() {
  return std::shared_ptr<const Security>(new Security());
}

std::string Security::Describe() const {
  std::string text = !tls() ? "plaintext"
                     : options_.tls.require_client_cert ? "mutual TLS"
                                                        : "TLS";
  if (token_.empty() && admin_token_.empty()) return text + ", no tokens";
  if (!token_.empty()) text += ", cluster token";
  if (!admin_token_.empty()) text += ", admin token";
  return text;
}

std::shared_ptr<grpc::ServerCredentials> Security::ServerCredentials() const {
  if (!tls()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      options_.tls.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                       : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_root_certs = ca_pem_;
  ssl.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  return grpc::SslServerCredentials(ssl);
}

std::shared_ptr<grpc::ChannelCredentials> Security::ChannelCredentials() const {
  if (!tls()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem_;
  ssl.pem_private_key = key_pem_;
  ssl.pem_cert_chain = cert_pem_;
  return grpc::SslCredentials(ssl);
}

absl::Status Security::Authorize(const grpc::ServerContextBase& context, RpcAccess access) const {
  if (access == RpcAccess::kAdmin && admin_token_.empty()) {
    return absl::PermissionDeniedError(
        "admin RPCs are disabled (no security.admin_token_file on this server)");
  }
  if (access == RpcAccess::kWorker && token_.empty()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(absl::StrCat(
        access == RpcAccess::kAdmin ? "admin RPC" : "this RPC",
        " needs 'authorization: Bearer <token>' metadata (",
        access == RpcAccess::kAdmin ? "the admin token" : "security.token_file", ")"));
  }
  std::string_view value(it->second.data(), it->second.size());
  if (!value.starts_with(kBearer)) {
    return absl::UnauthenticatedError("authorization metadata must be 'Bearer <token>'");
  }
  value.remove_prefix(sizeof(kBearer) - 1);
  // Both comparisons always run, so the time does not say which token (if any) matched.
  const bool is_admin = !admin_token_.empty() && ConstantTimeEquals(value, admin_token_);
  const bool is_worker = !token_.empty() && ConstantTimeEquals(value, token_);
  if (is_admin) return absl::OkStatus();
  if (access == RpcAccess::kAdmin) {
    if (is_worker) {
      return absl::PermissionDeniedError(
          "admin RPC: the cluster token is not enough (needs the admin token)");
    }
    return absl::UnauthenticatedError("admin RPC: token rejected");
  }
  if (is_worker) return absl::OkStatus();
  return absl::UnauthenticatedError("token rejected (not this cluster's security.token_file)");
}

void SetProcessSecurity(std::shared_ptr<const Security> security) {
  absl::MutexLock lock(&g_security_mu);
  ProcessSecurityLocked() = security != nullptr ? std::move(security) : Security::Insecure();
}

std::shared_ptr<const Security> ProcessSecurity() {
  absl::MutexLock lock(&g_security_mu);
  return ProcessSecurityLocked();
}

std::shared_ptr<grpc::ServerCredentials> ListeningCredentials() {
  return ProcessSecurity()->ServerCredentials();
}

absl::Status AuthorizeRpc(const grpc::ServerContextBase& context, RpcAccess access) {
  return ProcessSecurity()->Authorize(context, access);
}

grpc::ServerUnaryReactor* RejectUnlessAuthorized(grpc::CallbackServerContext* context,
                                                 RpcAccess access) {
  absl::Status status = AuthorizeRpc(*context, access);
  if (status.ok()) return nullptr;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Runs over the longer input whatever the contents; only the lengths affect the time.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace envtune
