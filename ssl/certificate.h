// gevent::MakeSelfSignedCertificate — an ECDSA P-256 key and X.509 certificate made in memory.
//
// For tests and for `loadgen --tls` with its embedded server: nothing is read from or written to
// disk, no private key is ever committed.
//
//   gevent::CertificateOptions ca_options;
//   ca_options.common_name = "test CA";
//   ca_options.is_ca = true;
//   absl::StatusOr<gevent::Certificate> ca = gevent::MakeSelfSignedCertificate(ca_options);
//   gevent::CertificateOptions leaf;
//   leaf.dns_names = {"localhost"};
//   leaf.ip_addresses = {"127.0.0.1"};
//   leaf.issuer = &*ca;                                  // signed by the CA, not self-signed
//   absl::StatusOr<gevent::Certificate> cert = gevent::MakeSelfSignedCertificate(leaf);
//
// Errors: InvalidArgument for an IP address that does not parse, a window that ends before it
// starts, an issuer whose PEM does not parse; OpenSSL's reason otherwise. Any thread.
#ifndef GEVENT_SSL_CERTIFICATE_H_
#define GEVENT_SSL_CERTIFICATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gevent {

// Certificate: PEM text of a certificate and of its private key (PKCS#8, unencrypted).
struct Certificate {
  std::string certificate_pem;
  std::string private_key_pem;
};

struct CertificateOptions {
  // Subject CN; also the issuer's for a self-signed one.
  std::string common_name = "localhost";
  // subjectAltName entries: DNS names and IP addresses (v4 or v6, numeric). What hostname
  // checks compare against. A leaf with neither gets no SAN extension.
  std::vector<std::string> dns_names = {"localhost"};
  std::vector<std::string> ip_addresses = {"127.0.0.1", "::1"};
  // Validity window. Defaults: from one hour ago (clock skew) for 30 days. An already expired
  // certificate: both in the past.
  absl::Time not_before = absl::InfinitePast();  // InfinitePast: now - 1 h
  absl::Time not_after = absl::InfinitePast();   // InfinitePast: not_before + 30 days
  // is_ca: basicConstraints CA:TRUE and keyCertSign (a CA that signs leaves).
  bool is_ca = false;
  // issuer: sign with this CA's key (its subject becomes the issuer); null: self-signed.
  const Certificate* issuer = nullptr;
};

// MakeSelfSignedCertificate: a fresh P-256 key and a certificate for it (self-signed, or signed
// by options.issuer), SHA-256, a random serial number.
absl::StatusOr<Certificate> MakeSelfSignedCertificate(const CertificateOptions& options = {});

}  // namespace gevent

#endif  // GEVENT_SSL_CERTIFICATE_H_
