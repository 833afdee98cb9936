#include "common/secrets.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace envtune {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

absl::Status OpenSslError(const std::string& what) {
  return absl::InternalError(absl::StrCat("TLS certificate generation: ", what, " failed"));
}

// The PEM text `write` puts into a memory BIO.
template <typename Write>
absl::StatusOr<std::string> ToPem(Write write, const char* what) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || write(bio.get()) != 1) return OpenSslError(what);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return OpenSslError(absl::StrCat("extension ", value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? absl::OkStatus() : OpenSslError(absl::StrCat("extension ", value));
}

// A v3 certificate for `key` named `cn`, signed by `issuer_key` (issuer null: self-signed).
absl::StatusOr<X509Ptr> MakeCertificate(EVP_PKEY* key, const char* cn, X509* issuer,
                                        EVP_PKEY* issuer_key, int days, bool ca) {
  X509Ptr cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), 2) != 1) return OpenSslError("X509_new");
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(BN_new(), BN_free);
  if (serial == nullptr || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return OpenSslError("serial number");
  }
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  if (X509_set_pubkey(cert.get(), key) != 1) return OpenSslError("X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("envtune"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn), -1, -1, 0) != 1) {
    return OpenSslError("subject name");
  }
  X509* signer = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1) {
    return OpenSslError("issuer name");
  }
  std::vector<std::pair<int, const char*>> extensions;
  if (ca) {
    extensions = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                  {NID_key_usage, "critical,keyCertSign,cRLSign"},
                  {NID_subject_key_identifier, "hash"}};
  } else {
    extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                  {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                  {NID_ext_key_usage, "serverAuth,clientAuth"},
                  {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"},
                  {NID_subject_key_identifier, "hash"},
                  {NID_authority_key_identifier, "keyid:always"}};
  }
  for (const auto& [nid, value] : extensions) {
    if (absl::Status s = AddExtension(cert.get(), signer, nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) <= 0) {
    return OpenSslError("X509_sign");
  }
  return cert;
}

absl::StatusOr<PkeyPtr> NewP256Key() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("P-256 key generation");
  return key;
}

}  // namespace

absl::StatusOr<std::string> RandomHex(int bytes) {
  if (bytes <= 0 || bytes > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("RandomHex: bad size ", bytes));
  }
  std::string raw(static_cast<size_t>(bytes), '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), bytes) != 1) {
    return absl::InternalError("no random bytes from the OS (RAND_bytes failed)");
  }
  return absl::BytesToHexString(raw);
}

absl::Status WritePrivateFile(const std::string& path, const std::string& contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  // An existing file keeps its mode through O_TRUNC: narrow it before anything is written.
  absl::Status status = ::fchmod(fd, 0600) == 0
                            ? absl::OkStatus()
                            : absl::UnavailableError(absl::StrCat("cannot chmod 0600 ", path));
  size_t written = 0;
  while (status.ok() && written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status = absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 && status.ok()) {
    status = absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return status;
}

absl::Status WriteLoopbackPki(const std::string& dir, int days) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot create ", dir, " (mode 0700)"));
  }
  absl::StatusOr<PkeyPtr> ca_key = NewP256Key();
  if (!ca_key.ok()) return ca_key.status();
  absl::StatusOr<X509Ptr> ca =
      MakeCertificate(ca_key->get(), "envtune run CA", nullptr, nullptr, days, /*ca=*/true);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<PkeyPtr> key = NewP256Key();
  if (!key.ok()) return key.status();
  absl::StatusOr<X509Ptr> cert = MakeCertificate(key->get(), kPkiServerName, ca->get(),
                                                 ca_key->get(), days, /*ca=*/false);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> ca_pem =
      ToPem([&](BIO* b) { return PEM_write_bio_X509(b, ca->get()); }, "CA PEM");
  absl::StatusOr<std::string> cert_pem =
      ToPem([&](BIO* b) { return PEM_write_bio_X509(b, cert->get()); }, "certificate PEM");
  absl::StatusOr<std::string> key_pem = ToPem(
      [&](BIO* b) {
        return PEM_write_bio_PrivateKey(b, key->get(), nullptr, nullptr, 0, nullptr, nullptr);
      },
      "key PEM");
  for (const auto* pem : {&ca_pem, &cert_pem, &key_pem}) {
    if (!pem->ok()) return pem->status();
  }
  const std::string base = dir + "/";
  if (absl::Status s = WritePrivateFile(base + kPkiCaFile, *ca_pem); !s.ok()) return s;
  if (absl::Status s = WritePrivateFile(base + kPkiCertFile, *cert_pem); !s.ok()) return s;
  return WritePrivateFile(base + kPkiKeyFile, *key_pem);
}

}  // namespace envtune
