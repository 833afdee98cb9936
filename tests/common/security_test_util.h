// Test secrets made at test time (no network, no openssl command): a cluster PKI, a rogue PKI
// (another CA), cluster/admin/wrong token files; and a scope that sets the process security.
#ifndef ENVTUNE_TESTS_COMMON_SECURITY_TEST_UTIL_H_
#define ENVTUNE_TESTS_COMMON_SECURITY_TEST_UTIL_H_

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/secrets.h"
#include "common/security.h"
#include "gtest/gtest.h"

namespace envtune::testing_util {

struct TestSecrets {
  std::string dir;
  std::string pki;        // ca.pem, cert.pem, key.pem of the cluster
  std::string rogue_pki;  // the same files under another CA
  std::string token_file, admin_token_file, wrong_token_file;
  std::string token, admin_token;

  // The cluster's TLS (server name "localhost"), optionally mutual.
  TlsOptions Tls(bool mutual = false) const {
    TlsOptions tls;
    tls.cert = pki + "/" + kPkiCertFile;
    tls.key = pki + "/" + kPkiKeyFile;
    tls.ca = pki + "/" + kPkiCaFile;
    tls.require_client_cert = mutual;
    tls.server_name = kPkiServerName;
    return tls;
  }
  // The rogue certificate and key, trusting the cluster's CA (it can dial, but a mutual-TLS
  // server refuses its certificate).
  TlsOptions RogueTls() const {
    TlsOptions tls = Tls();
    tls.cert = rogue_pki + "/" + kPkiCertFile;
    tls.key = rogue_pki + "/" + kPkiKeyFile;
    return tls;
  }
};

// Writes everything under TempDir()/<name>-<pid>; fails the test on error.
inline TestSecrets MakeTestSecrets(const std::string& name) {
  TestSecrets s;
  s.dir = ::testing::TempDir() + "/" + name + "-" + std::to_string(::getpid());
  std::filesystem::remove_all(s.dir);
  std::filesystem::create_directories(s.dir);
  s.pki = s.dir + "/pki";
  s.rogue_pki = s.dir + "/rogue";
  EXPECT_TRUE(WriteLoopbackPki(s.pki).ok());
  EXPECT_TRUE(WriteLoopbackPki(s.rogue_pki).ok());
  s.token = "cluster-token-0123456789abcdef";
  s.admin_token = "admin-token-0123456789abcdef";
  s.token_file = s.dir + "/token";
  s.admin_token_file = s.dir + "/admin-token";
  s.wrong_token_file = s.dir + "/wrong-token";
  EXPECT_TRUE(WritePrivateFile(s.token_file, s.token + "\n").ok());
  EXPECT_TRUE(WritePrivateFile(s.admin_token_file, s.admin_token + "\n").ok());
  EXPECT_TRUE(WritePrivateFile(s.wrong_token_file, "not-the-cluster-token-at-all").ok());
  return s;
}

// Loads `options`, failing the test (and returning Insecure()) when that fails.
inline std::shared_ptr<const Security> LoadOrDie(const SecurityOptions& options) {
  absl::StatusOr<std::shared_ptr<const Security>> security = Security::Load(options);
  EXPECT_TRUE(security.ok()) << security.status();
  return security.ok() ? *security : Security::Insecure();
}

// Sets the process security for the scope; plaintext and open again afterwards.
class ScopedProcessSecurity {
 public:
  explicit ScopedProcessSecurity(std::shared_ptr<const Security> security) {
    SetProcessSecurity(std::move(security));
  }
  ~ScopedProcessSecurity() { SetProcessSecurity(Security::Insecure()); }
  ScopedProcessSecurity(const ScopedProcessSecurity&) = delete;
  ScopedProcessSecurity& operator=(const ScopedProcessSecurity&) = delete;
};

}  // namespace envtune::testing_util

#endif  // ENVTUNE_TESTS_COMMON_SECURITY_TEST_UTIL_H_
