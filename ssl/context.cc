#include "ssl/context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ssl/error.h"

namespace gevent {
namespace {

constexpr char kOp[] = "gevent::SslContext::Create:";

absl::Status OptionError(absl::string_view option, absl::string_view value) {
  return SslError(absl::StatusCode::kInvalidArgument, kOp,
                  value.empty() ? std::string(option) : absl::StrCat(option, " ", value));
}

// The server's ALPN choice: the first of its own protocols that the client offered.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  const std::string& ours = *static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(ours.data()),
                            static_cast<unsigned int>(ours.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

absl::Status UseChainPem(SSL_CTX* ctx, const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               &BIO_free);
  X509* leaf = PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr) return OptionError("cert_chain_pem", "");
  const int used = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (used != 1) return OptionError("cert_chain_pem", "");
  SSL_CTX_clear_chain_certs(ctx);
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      return OptionError("cert_chain_pem", "");
    }
  }
  ERR_clear_error();  // The end of the PEM text is reported as an error.
  return absl::OkStatus();
}

absl::Status UseKeyPem(SSL_CTX* ctx, const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               &BIO_free);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return OptionError("key_pem", "");
  const int used = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (used != 1) return OptionError("key_pem", "");
  return absl::OkStatus();
}

absl::Status AddCaPem(SSL_CTX* ctx, const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               &BIO_free);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    const int ok = X509_STORE_add_cert(store, ca);
    X509_free(ca);
    if (ok != 1) return OptionError("ca_pem", "");
    ++added;
  }
  ERR_clear_error();
  if (added == 0) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, " ca_pem: no PEM certificate in it"));
  }
  return absl::OkStatus();
}

}  // namespace

SslContext::~SslContext() { SSL_CTX_free(ctx_); }

absl::StatusOr<std::shared_ptr<SslContext>> SslContext::Create(const SslContextOptions& options) {
  ERR_clear_error();
  const bool server = options.role == SslRole::kServer;
  std::shared_ptr<SslContext> self(new SslContext());
  self->role_ = options.role;
  self->ctx_ = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (self->ctx_ == nullptr) return SslError(absl::StatusCode::kResourceExhausted, kOp, "SSL_CTX_new");
  SSL_CTX* ctx = self->ctx_;
  if (SSL_CTX_set_min_proto_version(ctx, options.min_version) != 1) {
    return OptionError("min_version", absl::StrCat(options.min_version));
  }
  if (SSL_CTX_set_max_proto_version(ctx, options.max_version) != 1) {
    return OptionError("max_version", absl::StrCat(options.max_version));
  }
  // A write may complete in part (SendAll loops), and its retry may come from a moved buffer.
  // Buffers are kept (no SSL_MODE_RELEASE_BUFFERS): an allocation per record would cost more on
  // the echo path than the ~34 KiB per connection it saves.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);  // A non-blocking BIO: SslSocket retries.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, options.ciphers.c_str()) != 1) {
    return OptionError("ciphers", options.ciphers);
  }
  if (!options.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx, options.ciphersuites.c_str()) != 1) {
    return OptionError("ciphersuites", options.ciphersuites);
  }

  // Own chain and key.
  if (!options.cert_chain_file.empty() && !options.cert_chain_pem.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, " give cert_chain_file or cert_chain_pem, not both"));
  }
  if (!options.key_file.empty() && !options.key_pem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, " give key_file or key_pem, not both"));
  }
  const bool has_cert = !options.cert_chain_file.empty() || !options.cert_chain_pem.empty();
  const bool has_key = !options.key_file.empty() || !options.key_pem.empty();
  if (has_cert != has_key) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, " a certificate chain needs its private key and the other way round"));
  }
  if (server && !has_cert) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, " a server needs a certificate chain and a private key"));
  }
  if (!options.cert_chain_file.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx, options.cert_chain_file.c_str()) != 1) {
    return OptionError("cert_chain_file", options.cert_chain_file);
  }
  if (!options.cert_chain_pem.empty()) {
    if (absl::Status s = UseChainPem(ctx, options.cert_chain_pem); !s.ok()) return s;
  }
  if (!options.key_file.empty() &&
      SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return OptionError("key_file", options.key_file);
  }
  if (!options.key_pem.empty()) {
    if (absl::Status s = UseKeyPem(ctx, options.key_pem); !s.ok()) return s;
  }
  if (has_cert && SSL_CTX_check_private_key(ctx) != 1) {
    return OptionError("key", "(does it match the certificate?)");
  }

  // Trust.
  self->verify_peer_ = options.verify_peer.value_or(!server);
  self->check_hostname_ = options.check_hostname;
  const bool has_ca = !options.ca_file.empty() || !options.ca_path.empty() || !options.ca_pem.empty();
  if (!options.ca_file.empty() || !options.ca_path.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.ca_file.empty() ? nullptr : options.ca_file.c_str(),
                                      options.ca_path.empty() ? nullptr : options.ca_path.c_str()) != 1) {
      return OptionError(options.ca_file.empty() ? "ca_path" : "ca_file",
                         options.ca_file.empty() ? options.ca_path : options.ca_file);
    }
  }
  if (!options.ca_pem.empty()) {
    if (absl::Status s = AddCaPem(ctx, options.ca_pem); !s.ok()) return s;
  }
  if (!has_ca && options.use_default_ca_store && self->verify_peer_) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) return OptionError("the default CA store", "");
  }
  if (self->verify_peer_) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }

  // ALPN.
  for (const std::string& p : options.alpn) {
    if (p.empty() || p.size() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat(kOp, " alpn: a protocol name must have 1 to 255 bytes, got '", p, "'"));
    }
    self->alpn_wire_.push_back(static_cast<char>(p.size()));
    self->alpn_wire_ += p;
  }
  if (!self->alpn_wire_.empty()) {
    if (server) {
      SSL_CTX_set_alpn_select_cb(ctx, &SelectAlpn, &self->alpn_wire_);
    } else if (SSL_CTX_set_alpn_protos(
                   ctx, reinterpret_cast<const unsigned char*>(self->alpn_wire_.data()),
                   static_cast<unsigned int>(self->alpn_wire_.size())) != 0) {
      return OptionError("alpn", "");
    }
  }
  if (server) {
    // Session tickets stay on (TLS 1.3 sends them after the handshake, in the middle of the
    // client's reads). A context id makes resumption with client certificates possible.
    static const unsigned char kSessionId[] = "gevent_cpp";
    SSL_CTX_set_session_id_context(ctx, kSessionId, sizeof kSessionId - 1);
  }
  return self;
}

}  // namespace gevent
