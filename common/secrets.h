// Run secrets made on this machine: random tokens and keys, files only their owner can read,
// and a throwaway TLS PKI for clusters on one machine (`envtune train`) and tests. Uses
// OpenSSL's libcrypto; no network, no openssl command.
#ifndef ENVTUNE_COMMON_SECRETS_H_
#define ENVTUNE_COMMON_SECRETS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace envtune {

// `bytes` bytes from the OS's cryptographic generator, as lower-case hex (2 x bytes characters).
absl::StatusOr<std::string> RandomHex(int bytes);

// Writes `contents` to `path` with mode 0600 (created, or truncated and set to 0600), so no other
// user can read it at any moment.
absl::Status WritePrivateFile(const std::string& path, const std::string& contents);

// Files written by WriteLoopbackPki, relative to its directory.
inline constexpr char kPkiCaFile[] = "ca.pem";
inline constexpr char kPkiCertFile[] = "cert.pem";
inline constexpr char kPkiKeyFile[] = "key.pem";
// The name in the certificate besides IP 127.0.0.1 and ::1 (security.tls.server_name).
inline constexpr char kPkiServerName[] = "localhost";

// Creates `dir` (0700) holding a fresh CA certificate (ca.pem) and one P-256 certificate signed
// by it (cert.pem, key.pem; for servers and clients alike, DNS:localhost, IP:127.0.0.1, ::1),
// valid for `days` days. The CA's key is never written, so nothing else can be signed by it.
absl::Status WriteLoopbackPki(const std::string& dir, int days = 30);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_SECRETS_H_
