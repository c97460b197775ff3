// The fixture shared by //ssl's tests: a CA and a leaf for localhost made at test time, files
// for the peers, contexts, and an in-process TLS server (StreamServer + MakeSslHandler).
#ifndef GEVENT_SSL_SSL_TEST_UTIL_H_
#define GEVENT_SSL_SSL_TEST_UTIL_H_

#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "hub/hub_test_fixture.h"
#include "socket/resolve.h"
#include "socket/server.h"
#include "ssl/context.h"
#include "ssl/server.h"
#include "ssl/ssl_socket.h"
#include "ssl/testing.h"

namespace gevent {

class SslTest : public HubTestFixture {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTestDir("ssl_test");
    absl::StatusOr<testing::Pki> pki = testing::MakePki(dir_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
  }
  void TearDown() override {
    if (server_) server_->Stop(absl::ZeroDuration());
    server_.reset();
    HubTestFixture::TearDown();
  }

  std::shared_ptr<SslContext> ClientContext(SslContextOptions o = {}) {
    if (o.ca_pem.empty() && o.ca_file.empty()) o.ca_pem = pki_.ca.certificate_pem;
    absl::StatusOr<std::shared_ptr<SslContext>> ctx = SslContext::Create(o);
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    return ctx.ok() ? *ctx : nullptr;
  }
  std::shared_ptr<SslContext> ServerContext(SslContextOptions o = {}) {
    o.role = SslRole::kServer;
    if (o.cert_chain_pem.empty() && o.cert_chain_file.empty()) {
      o.cert_chain_pem = pki_.leaf.certificate_pem;
      o.key_pem = pki_.leaf.private_key_pem;
    }
    absl::StatusOr<std::shared_ptr<SslContext>> ctx = SslContext::Create(o);
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    return ctx.ok() ? *ctx : nullptr;
  }

  // StartServer: a StreamServer on 127.0.0.1 running `handler` over TLS.
  void StartServer(SslHandler handler, SslServerOptions tls = {},
                   std::shared_ptr<SslContext> ctx = nullptr) {
    tls.context = ctx ? ctx : ServerContext();
    ssl_stats_ = std::make_shared<SslServerStats>();
    server_ = std::make_unique<StreamServer>(SocketAddress::Loopback(0),
                                             MakeSslHandler(std::move(handler), tls, ssl_stats_));
    ASSERT_TRUE(server_->Start().ok());
  }
  // An echo handler until the client's close_notify (or an error, kept in last_error_).
  SslHandler EchoHandler() {
    return [this](SslSocket& conn, const SocketAddress&) {
      char buf[16384];
      for (;;) {
        absl::StatusOr<size_t> n = conn.RecvInto(absl::MakeSpan(buf), absl::Seconds(60));
        if (!n.ok()) {
          last_error_ = n.status();
          return;
        }
        if (*n == 0) return;
        if (absl::Status s = conn.SendAll({buf, *n}, absl::Seconds(60)); !s.ok()) {
          last_error_ = s;
          return;
        }
      }
    };
  }

  std::unique_ptr<SslSocket> Connect(std::shared_ptr<SslContext> ctx = nullptr,
                                     const std::string& host = "localhost") {
    absl::StatusOr<std::unique_ptr<SslSocket>> c =
        CreateSslConnection(host, server_->port(), ctx ? ctx : ClientContext(), absl::Seconds(30));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::string dir_;
  testing::Pki pki_;
  std::unique_ptr<StreamServer> server_;
  std::shared_ptr<SslServerStats> ssl_stats_;
  absl::Status last_error_;
};

// Pattern: n bytes that are not periodic at any small length.
inline std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 4099) & 0xff);
  return s;
}

}  // namespace gevent

#endif  // GEVENT_SSL_SSL_TEST_UTIL_H_
