// gevent::SslContext — TLS settings shared by many connections (Python's ssl.SSLContext).
//
//   gevent::SslContextOptions options;                 // a client: verifies the server against
//   options.ca_file = "ca.pem";                        // ca.pem (default: the system store)
//   absl::StatusOr<std::shared_ptr<gevent::SslContext>> ctx = gevent::SslContext::Create(options);
//   gevent::CreateSslConnection("example.com", 443, *ctx, absl::Seconds(5));   // ssl_socket.h
//
//   gevent::SslContextOptions server;                  // a server: its chain and key
//   server.role = gevent::SslRole::kServer;
//   server.cert_chain_pem = cert.certificate_pem;      // or cert_chain_file / key_file
//   server.key_pem = cert.private_key_pem;
//
// Defaults: TLS 1.2 is the lowest version (min_version); clients verify the peer's certificate
// chain (against ca_file / ca_path / ca_pem, or the system's default store when none is given)
// and the host name given to the connection (DNS names and IP addresses, against the SANs);
// servers ask for no client certificate unless verify_peer is set (mutual TLS: then the client
// must present one that the CAs accept). Client connections send SNI for a DNS host name.
// ALPN: clients offer `alpn` in order; servers pick the first of their `alpn` that the client
// offered (a client offering none of them gets no ALPN, the handshake goes on).
//
// Errors: Create returns InvalidArgument (NotFound for a missing file) with OpenSSL's reason,
// naming the option: "gevent::SslContext::Create: key_file /x/key.pem: no such file ...".
//
// Lifetime and thread-safety: shared_ptr-owned; every SslSocket made from a context holds a
// reference. After Create it is immutable and safe to use from any number of threads at once
// (OpenSSL's SSL_CTX is, once configured).
#ifndef GEVENT_SSL_CONTEXT_H_
#define GEVENT_SSL_CONTEXT_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace gevent {

enum class SslRole { kClient, kServer };

// TLS protocol versions for min_version / max_version (the wire values OpenSSL uses).
inline constexpr int kTls12 = 0x0303;
inline constexpr int kTls13 = 0x0304;

struct SslContextOptions {
  SslRole role = SslRole::kClient;
  // This side's certificate chain (leaf first) and private key: PEM files, or PEM text in memory
  // (not both for one of them). Required for a server, optional for a client (mutual TLS).
  std::string cert_chain_file;
  std::string key_file;
  std::string cert_chain_pem;
  std::string key_pem;
  // Trusted CAs for verifying the peer: a PEM file, a folder hashed by `openssl rehash`, PEM text
  // (any of them together). When none is given and use_default_ca_store is set, the system's
  // default store (Debian: /etc/ssl/certs).
  std::string ca_file;
  std::string ca_path;
  std::string ca_pem;
  bool use_default_ca_store = true;
  // verify_peer: check the peer's certificate chain. Default (nullopt): on for a client, off for a
  // server; on for a server asks for and requires a client certificate (mutual TLS).
  std::optional<bool> verify_peer;
  // check_hostname: a client checks the host name given to the connection against the
  // certificate (when verify_peer is on). Turn off only to trust any name a CA signed.
  bool check_hostname = true;
  // alpn: application protocols ("h2", "http/1.1"), most preferred first.
  std::vector<std::string> alpn;
  // Lowest and highest versions (kTls12, kTls13); 0 for max_version: the highest OpenSSL has.
  int min_version = kTls12;
  int max_version = 0;
  // ciphers (TLS 1.2) / ciphersuites (TLS 1.3) in OpenSSL's syntax; empty: OpenSSL's defaults.
  std::string ciphers;
  std::string ciphersuites;
};

class SslContext {
 public:
  // Create builds the context; see the file comment for the errors.
  static absl::StatusOr<std::shared_ptr<SslContext>> Create(const SslContextOptions& options);

  SslContext(const SslContext&) = delete;
  SslContext& operator=(const SslContext&) = delete;
  ~SslContext();

  SslRole role() const { return role_; }
  bool verify_peer() const { return verify_peer_; }
  bool check_hostname() const { return check_hostname_; }
  // native: the SSL_CTX (owned by this object), for what the options do not cover. Configure it
  // before the first connection only.
  SSL_CTX* native() const { return ctx_; }

 private:
  SslContext() = default;
  SSL_CTX* ctx_ = nullptr;
  SslRole role_ = SslRole::kClient;
  bool verify_peer_ = false;
  bool check_hostname_ = true;
  std::string alpn_wire_;  // The ALPN list in wire format (length-prefixed names).
};

}  // namespace gevent

#endif  // GEVENT_SSL_CONTEXT_H_
