#include "ssl/certificate.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "socket/address.h"
#include "ssl/error.h"

namespace gevent {
namespace {

constexpr char kOp[] = "gevent::MakeSelfSignedCertificate:";

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

absl::Status Failed(absl::string_view what) {
  return SslError(absl::StatusCode::kInternal, kOp, what);
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
  if (ext == nullptr) return Failed(absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return Failed("X509_add_ext");
  return absl::OkStatus();
}

absl::Status SetTime(ASN1_TIME* field, absl::Time t) {
  if (ASN1_TIME_set(field, static_cast<time_t>(absl::ToUnixSeconds(t))) == nullptr) {
    return Failed("ASN1_TIME_set");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Certificate> MakeSelfSignedCertificate(const CertificateOptions& options) {
  ERR_clear_error();
  const absl::Time not_before = options.not_before == absl::InfinitePast()
                                    ? absl::Now() - absl::Hours(1)
                                    : options.not_before;
  const absl::Time not_after = options.not_after == absl::InfinitePast()
                                   ? not_before + absl::Hours(24 * 30)
                                   : options.not_after;
  if (not_after <= not_before) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, " not_after (", absl::FormatTime(not_after),
                                                   ") must come after not_before (",
                                                   absl::FormatTime(not_before), ")"));
  }
  std::vector<std::string> sans;
  for (const std::string& dns : options.dns_names) sans.push_back(absl::StrCat("DNS:", dns));
  for (const std::string& ip : options.ip_addresses) {
    if (!SocketAddress::FromIp(ip, 0).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kOp, " ip_addresses: '", ip, "' is not a numeric IPv4 or IPv6 address"));
    }
    sans.push_back(absl::StrCat("IP:", ip));
  }

  KeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return Failed("EVP_EC_gen(P-256)");

  // The signer: the issuer's key and certificate, or the new ones.
  KeyPtr issuer_key;
  X509Ptr issuer_cert;
  if (options.issuer != nullptr) {
    BioPtr kb(BIO_new_mem_buf(options.issuer->private_key_pem.data(),
                              static_cast<int>(options.issuer->private_key_pem.size())));
    issuer_key.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
    BioPtr cb(BIO_new_mem_buf(options.issuer->certificate_pem.data(),
                              static_cast<int>(options.issuer->certificate_pem.size())));
    issuer_cert.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
    if (issuer_key == nullptr || issuer_cert == nullptr) {
      return SslError(absl::StatusCode::kInvalidArgument, kOp, "issuer");
    }
  }

  X509Ptr cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), 2) != 1) return Failed("X509_new");
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return Failed("RAND_bytes");
  serial_bytes[0] &= 0x7f;  // positive
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
  const bool serial_ok =
      serial != nullptr && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(serial);
  if (!serial_ok) return Failed("serial number");
  if (absl::Status s = SetTime(X509_getm_notBefore(cert.get()), not_before); !s.ok()) return s;
  if (absl::Status s = SetTime(X509_getm_notAfter(cert.get()), not_after); !s.ok()) return s;
  if (X509_set_pubkey(cert.get(), key.get()) != 1) return Failed("X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(options.common_name.c_str()),
                                 -1, -1, 0) != 1) {
    return Failed("common_name");
  }
  X509* signer_cert = issuer_cert != nullptr ? issuer_cert.get() : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer_cert)) != 1) {
    return Failed("X509_set_issuer_name");
  }
  absl::Status ext = AddExtension(cert.get(), signer_cert, NID_basic_constraints,
                                  options.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  if (ext.ok()) {
    ext = AddExtension(cert.get(), signer_cert, NID_key_usage,
                       options.is_ca ? "critical,keyCertSign,cRLSign,digitalSignature"
                                     : "critical,digitalSignature");
  }
  if (ext.ok() && !options.is_ca) {
    ext = AddExtension(cert.get(), signer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  if (ext.ok()) ext = AddExtension(cert.get(), signer_cert, NID_subject_key_identifier, "hash");
  if (ext.ok() && issuer_cert != nullptr) {
    ext = AddExtension(cert.get(), signer_cert, NID_authority_key_identifier, "keyid:always");
  }
  if (ext.ok() && !sans.empty()) {
    ext = AddExtension(cert.get(), signer_cert, NID_subject_alt_name, absl::StrJoin(sans, ","));
  }
  if (!ext.ok()) return ext;
  EVP_PKEY* signer_key = issuer_key != nullptr ? issuer_key.get() : key.get();
  if (X509_sign(cert.get(), signer_key, EVP_sha256()) == 0) return Failed("X509_sign");

  BioPtr cert_out(BIO_new(BIO_s_mem()));
  BioPtr key_out(BIO_new(BIO_s_mem()));
  if (cert_out == nullptr || key_out == nullptr || PEM_write_bio_X509(cert_out.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Failed("PEM output");
  }
  Certificate out;
  out.certificate_pem = BioText(cert_out.get());
  out.private_key_pem = BioText(key_out.get());
  return out;
}

}  // namespace gevent
