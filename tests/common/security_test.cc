// common/security.h and common/secrets.h: config reading, loading and checking credentials,
// token comparison, private files, the loopback PKI, and /metrics over HTTPS (plain HTTP and
// foreign client certificates refused).
#include "common/security.h"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "common/config.h"
#include "common/metrics.h"
#include "common/secrets.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/common/security_test_util.h"

namespace envtune {
namespace {

using testing_util::MakeTestSecrets;
using testing_util::TestSecrets;

absl::StatusOr<SecurityOptions> FromYaml(const std::string& yaml,
                                         const std::vector<std::string>& overrides = {}) {
  const std::string path = ::testing::TempDir() + "/security_test_config.yaml";
  std::ofstream(path) << yaml;
  return LoadSecurityOptions(path, overrides);
}

TEST(SecurityConfigTest, ReadsTheSectionAndOnlyIt) {
  absl::StatusOr<SecurityOptions> options = FromYaml(
      "learner: {anything: 1}\n"
      "security:\n"
      "  tls: {cert: c.pem, key: k.pem, ca: ca.pem, require_client_cert: true}\n"
      "  token_file: /t\n",
      {"security.admin_token_file=/a", "actor.whatever=2"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->tls.cert, "c.pem");
  EXPECT_EQ(options->tls.key, "k.pem");
  EXPECT_EQ(options->tls.ca, "ca.pem");
  EXPECT_TRUE(options->tls.require_client_cert);
  EXPECT_EQ(options->token_file, "/t");
  EXPECT_EQ(options->admin_token_file, "/a");
}

TEST(SecurityConfigTest, UnknownKeysAndPartialTlsAreErrorsNamingTheKey) {
  absl::StatusOr<SecurityOptions> typo = FromYaml("security: {tls: {crt: c.pem}}\n");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(std::string(typo.status().message()).find("security.tls.crt"), std::string::npos)
      << typo.status();
  absl::StatusOr<SecurityOptions> partial = FromYaml("security: {tls: {cert: c.pem}}\n");
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(std::string(partial.status().message()).find("cert, key and ca"), std::string::npos)
      << partial.status();
  absl::StatusOr<SecurityOptions> mutual_without_tls =
      FromYaml("security: {tls: {require_client_cert: true}}\n");
  ASSERT_FALSE(mutual_without_tls.ok());
  EXPECT_NE(std::string(mutual_without_tls.status().message()).find("require_client_cert"),
            std::string::npos);
  absl::StatusOr<SecurityOptions> name_without_tls =
      FromYaml("security: {tls: {server_name: envtune-cluster}}\n");
  ASSERT_FALSE(name_without_tls.ok());
  EXPECT_NE(std::string(name_without_tls.status().message()).find("security.tls.server_name"),
            std::string::npos);
}

TEST(SecurityLoadTest, LoadsTheLoopbackPkiAndTokens) {
  TestSecrets secrets = MakeTestSecrets("security_load");
  SecurityOptions options;
  options.tls = secrets.Tls(/*mutual=*/true);
  options.token_file = secrets.token_file;
  options.admin_token_file = secrets.admin_token_file;
  absl::StatusOr<std::shared_ptr<const Security>> security = Security::Load(options);
  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_TRUE((*security)->tls());
  EXPECT_TRUE((*security)->has_token());
  EXPECT_EQ((*security)->token(), secrets.token);  // trailing newline stripped
  EXPECT_EQ((*security)->Describe(), "mutual TLS, cluster token, admin token");
  EXPECT_EQ(Security::Insecure()->Describe(), "plaintext, no tokens");
  EXPECT_NE((*security)->ServerCredentials(), nullptr);
  EXPECT_NE((*security)->ChannelCredentials(), nullptr);
}

TEST(SecurityLoadTest, BadFilesAreClearErrors) {
  TestSecrets secrets = MakeTestSecrets("security_bad");
  auto error = [](const SecurityOptions& options) {
    absl::StatusOr<std::shared_ptr<const Security>> security = Security::Load(options);
    EXPECT_FALSE(security.ok());
    EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(security.status().message());
  };
  SecurityOptions missing;
  missing.token_file = secrets.dir + "/nope";
  EXPECT_NE(error(missing).find("security.token_file: cannot read"), std::string::npos);

  const std::string short_token = secrets.dir + "/short";
  ASSERT_TRUE(WritePrivateFile(short_token, "abc\n").ok());
  SecurityOptions too_short;
  too_short.token_file = short_token;
  EXPECT_NE(error(too_short).find("16 to 4096 characters"), std::string::npos);

  const std::string spaced = secrets.dir + "/spaced";
  ASSERT_TRUE(WritePrivateFile(spaced, "a token with spaces in it").ok());
  SecurityOptions with_spaces;
  with_spaces.admin_token_file = spaced;
  EXPECT_NE(error(with_spaces).find("printable ASCII"), std::string::npos);

  SecurityOptions same;
  same.token_file = secrets.token_file;
  same.admin_token_file = secrets.token_file;
  EXPECT_NE(error(same).find("must differ"), std::string::npos);

  SecurityOptions mismatched;
  mismatched.tls = secrets.Tls();
  mismatched.tls.key = secrets.rogue_pki + "/" + kPkiKeyFile;  // another certificate's key
  EXPECT_NE(error(mismatched).find("is not the key of the certificate"), std::string::npos);

  SecurityOptions garbage;
  garbage.tls = secrets.Tls();
  garbage.tls.ca = secrets.token_file;  // not PEM
  EXPECT_NE(error(garbage).find("security.tls.ca"), std::string::npos);

  SecurityOptions partial;
  partial.tls.cert = secrets.Tls().cert;
  EXPECT_NE(error(partial).find("cert, key and ca"), std::string::npos);
}

TEST(SecurityTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("token-123", "token-123"));
  EXPECT_FALSE(ConstantTimeEquals("token-123", "token-124"));
  EXPECT_FALSE(ConstantTimeEquals("token-123", "token-1234"));
  EXPECT_FALSE(ConstantTimeEquals("token-1234", "token-123"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(SecretsTest, PrivateFilesAndRandomTokens) {
  const std::string path = ::testing::TempDir() + "/secrets_test_private";
  std::ofstream(path) << "old";
  ::chmod(path.c_str(), 0644);
  ASSERT_TRUE(WritePrivateFile(path, "new-secret").ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "new-secret");
  EXPECT_FALSE(WritePrivateFile("/nonexistent-dir/x", "y").ok());

  absl::StatusOr<std::string> a = RandomHex(32), b = RandomHex(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 64u);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_FALSE(RandomHex(0).ok());
}

TEST(SecretsTest, LoopbackPkiFilesArePrivate) {
  TestSecrets secrets = MakeTestSecrets("security_pki");
  struct stat st {};
  ASSERT_EQ(::stat(secrets.pki.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const char* file : {kPkiCaFile, kPkiCertFile, kPkiKeyFile}) {
    ASSERT_EQ(::stat((secrets.pki + "/" + file).c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }
  EXPECT_FALSE(std::filesystem::exists(secrets.pki + "/ca.key"));
}

// /metrics over HTTPS: a client trusting the CA reads it; plain HTTP does not; under
// require_client_cert only the cluster's certificate is served.
TEST(MetricsTlsTest, HttpsAndClientCertificates) {
  TestSecrets secrets = MakeTestSecrets("security_metrics");
  for (bool mutual : {false, true}) {
    SCOPED_TRACE(mutual ? "mutual" : "server-only");
    Metrics metrics;
    TlsOptions tls = secrets.Tls(mutual);
    ASSERT_TRUE(metrics.Counter("envtune_test_total", "a test counter").ok());
    ASSERT_TRUE(metrics.Serve("127.0.0.1", 0, &tls).ok());
    const int port = metrics.port();
    auto https = [&](const TlsOptions& client) {
      httplib::SSLClient cli("127.0.0.1", port, client.cert, client.key);
      cli.set_ca_cert_path(client.ca.c_str());
      cli.enable_server_certificate_verification(true);
      cli.set_connection_timeout(5);
      return cli.Get("/metrics");
    };
    httplib::Result ok = https(tls);
    ASSERT_TRUE(ok) << httplib::to_string(ok.error());
    EXPECT_EQ(ok->status, 200);
    EXPECT_NE(ok->body.find("envtune_test_total"), std::string::npos);

    httplib::Client plain("127.0.0.1", port);
    plain.set_connection_timeout(5);
    plain.set_read_timeout(5);
    httplib::Result refused = plain.Get("/metrics");
    EXPECT_TRUE(!refused || refused->status != 200);

    httplib::Result rogue = https(secrets.RogueTls());
    if (mutual) {
      EXPECT_FALSE(rogue) << "a certificate of another CA was served";
    } else {
      EXPECT_TRUE(rogue && rogue->status == 200);
    }
  }
  TlsOptions broken = secrets.Tls();
  broken.key = secrets.rogue_pki + "/" + kPkiKeyFile;
  Metrics metrics;
  absl::Status s = metrics.Serve("127.0.0.1", 0, &broken);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

}  // namespace
}  // namespace envtune
