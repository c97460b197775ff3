// loadgen --tls: against the embedded server (a certificate made in memory) and against external
// TLS echo servers, verified with --tls_ca, not verified with --tls_insecure, and failing with
// OpenSSL's reason when the certificate is not trusted or the server does not speak TLS.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "loadgen/config.h"
#include "loadgen/report.h"
#include "loadgen/run.h"
#include "socket/echo.h"
#include "socket/server.h"
#include "ssl/certificate.h"
#include "ssl/context.h"
#include "ssl/echo.h"
#include "ssl/server.h"
#include "ssl/ssl_socket.h"
#include "ssl/testing.h"

namespace loadgen {
namespace {

Config ShortTlsRun() {
  Config c;
  c.clients = 20;
  c.duration = absl::Milliseconds(500);
  c.warmup = absl::Milliseconds(200);
  c.connect_timeout = absl::Seconds(5);
  c.progress = false;
  c.tls = true;
  return c;
}

RunOptions Quiet() {
  RunOptions o;
  o.calibrate = false;
  return o;
}

// ServerContext: a server context presenting `leaf`.
std::shared_ptr<gevent::SslContext> ServerContext(const gevent::Certificate& leaf) {
  gevent::SslContextOptions o;
  o.role = gevent::SslRole::kServer;
  o.cert_chain_pem = leaf.certificate_pem;
  o.key_pem = leaf.private_key_pem;
  absl::StatusOr<std::shared_ptr<gevent::SslContext>> context = gevent::SslContext::Create(o);
  EXPECT_TRUE(context.ok()) << context.status();
  return context.ok() ? *context : nullptr;
}

// Pki: a CA and a leaf for 127.0.0.1 it signed, with ca.pem in a fresh folder (ssl/testing.h).
gevent::testing::Pki MakePki(const std::string& name) {
  absl::StatusOr<gevent::testing::Pki> pki =
      gevent::testing::MakePki(gevent::testing::MakeTestDir(name));
  EXPECT_TRUE(pki.ok()) << pki.status();
  return pki.ok() ? *pki : gevent::testing::Pki();
}

// A TLS echo server on its own threads presenting `leaf`.
class TlsEchoServer {
 public:
  explicit TlsEchoServer(const gevent::Certificate& leaf) {
    gevent::SslServerOptions tls;
    tls.context = ServerContext(leaf);
    gevent::EchoServerOptions options;
    options.make_handler = gevent::MakeSslEchoHandlerFactory(tls, stats_);
    server_ = std::make_unique<gevent::EchoServer>(options);
    EXPECT_TRUE(server_->Start().ok());
  }
  std::string target() const { return absl::StrCat("127.0.0.1:", server_->port()); }
  gevent::SslServerStatsSnapshot tls_stats() const { return stats_->Snapshot(); }

 private:
  std::shared_ptr<gevent::SslServerStats> stats_ = std::make_shared<gevent::SslServerStats>();
  std::unique_ptr<gevent::EchoServer> server_;
};

// SelfSigned: a self-signed certificate for 127.0.0.1 and localhost.
gevent::Certificate SelfSigned() {
  absl::StatusOr<gevent::Certificate> cert = gevent::MakeSelfSignedCertificate();
  EXPECT_TRUE(cert.ok()) << cert.status();
  return cert.ok() ? *cert : gevent::Certificate();
}

TEST(TlsTest, EmbeddedServerOverTlsHasNoErrorsAndEndsCleanly) {
  for (int pipeline : {1, 4}) {
    Config c = ShortTlsRun();
    c.pipeline = pipeline;
    c.client_threads = 2;
    absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_GT(r->messages, 0u);
    EXPECT_EQ(TotalErrors(r->errors), 0u);
    EXPECT_EQ(r->bytes, r->messages * 64);
    EXPECT_EQ(r->connected_clients, 20);
    EXPECT_EQ(r->server_connection_errors, 0) << "pipeline " << pipeline;
    EXPECT_TRUE(absl::EndsWith(r->server, " (TLS)")) << r->server;
    EXPECT_EQ(ExitCodeFor(*r), kExitOk);
  }
}

// --requests_per_connection over TLS: each planned reconnect ends its session with close_notify,
// so the server counts no connection error.
TEST(TlsTest, PlannedReconnectsCloseCleanly) {
  Config c = ShortTlsRun();
  c.clients = 10;
  c.requests_per_connection = 5;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  EXPECT_GT(r->counts[static_cast<std::size_t>(Count::kPlannedReconnects)], 0u);
  EXPECT_EQ(r->server_connection_errors, 0) << FormatReport(*r);
}

TEST(TlsTest, ExternalServerVerifiedWithTheGivenCa) {
  const gevent::testing::Pki pki = MakePki("good_ca");
  TlsEchoServer server(pki.leaf);
  Config c = ShortTlsRun();
  c.target = server.target();
  c.tls_ca = pki.ca_file;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(TotalErrors(r->errors), 0u);
  EXPECT_GE(server.tls_stats().handshakes, 20u);
  EXPECT_EQ(server.tls_stats().failed(), 0u);
}

// Another CA's file: no connection is made, and the run ends after --connect_timeout with
// OpenSSL's reason (RunLoad's dead-target rule; the binary exits 3).
TEST(TlsTest, UntrustedCertificateEndsTheRunWithTheVerifyReason) {
  const gevent::testing::Pki pki = MakePki("server_ca");
  const gevent::testing::Pki other = MakePki("other_ca");
  TlsEchoServer server(pki.leaf);
  Config c = ShortTlsRun();
  c.target = server.target();
  c.connect_timeout = absl::Seconds(1);
  c.duration = absl::Seconds(60);  // Ended by the dead-target rule after 1 s, not by the clock.
  c.tls_ca = other.ca_file;
  const absl::Time start = absl::Now();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_FALSE(r.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_TRUE(absl::StrContains(r.status().message(), "TLS handshake: "))
      << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "certificate verify failed"))
      << r.status();
  EXPECT_GT(server.tls_stats().failed(), 0u);
}

TEST(TlsTest, InsecureAcceptsASelfSignedServer) {
  TlsEchoServer server(SelfSigned());
  Config c = ShortTlsRun();
  c.target = server.target();
  c.tls_insecure = true;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(TotalErrors(r->errors), 0u);
}

// Without --tls_insecure, the system's CAs do not trust a self-signed server.
TEST(TlsTest, SelfSignedServerIsRefusedByDefault) {
  TlsEchoServer server(SelfSigned());
  Config c = ShortTlsRun();
  c.target = server.target();
  c.connect_timeout = absl::Seconds(1);
  c.duration = absl::Seconds(60);  // Ended by the dead-target rule after 1 s, not by the clock.
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "self-signed certificate")) << r.status();
}

// --tls against a plain echo server: it echoes the ClientHello, which is no ServerHello.
TEST(TlsTest, PlainServerGivesAProtocolErrorInBoundedTime) {
  gevent::EchoServer plain;
  ASSERT_TRUE(plain.Start().ok());
  Config c = ShortTlsRun();
  c.target = absl::StrCat("127.0.0.1:", plain.port());
  c.tls_insecure = true;
  c.connect_timeout = absl::Seconds(1);
  c.duration = absl::Seconds(60);  // Ended by the dead-target rule after 1 s, not by the clock.
  const absl::Time start = absl::Now();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_FALSE(r.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_TRUE(absl::StrContains(r.status().message(), "TLS handshake: ")) << r.status();
}

// The redis and http clients talk through the same Stream: http over TLS, keep-alive and
// pipelined, against a TLS server answering every request it parses.
TEST(TlsTest, HttpOverTlsIsParsedAndCounted) {
  const gevent::testing::Pki pki = MakePki("http_ca");
  gevent::SslServerOptions tls;
  tls.context = ServerContext(pki.leaf);
  gevent::MultiThreadServer server(
      gevent::SocketAddress::Loopback(0),
      gevent::MakeSslHandler(
          [](gevent::SslSocket& conn, const gevent::SocketAddress&) {
            static constexpr char kResponse[] =
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            std::string in;
            char buf[4096];
            for (;;) {
              absl::StatusOr<size_t> n = conn.RecvInto(absl::MakeSpan(buf));
              if (!n.ok() || *n == 0) return;
              in.append(buf, *n);
              std::string out;
              for (size_t end; (end = in.find("\r\n\r\n")) != std::string::npos;) {
                in.erase(0, end + 4);
                out += kResponse;
              }
              if (!out.empty() && !conn.SendAll(out).ok()) return;
            }
          },
          tls),
      1);
  ASSERT_TRUE(server.Start().ok());
  Config c = ShortTlsRun();
  c.protocol = "http";
  c.pipeline = 4;
  c.target = absl::StrCat("127.0.0.1:", server.port());
  c.tls_ca = pki.ca_file;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  server.Stop(absl::ZeroDuration());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  EXPECT_EQ(r->counts[static_cast<std::size_t>(Count::kHttp2xx)], r->messages);
}

TEST(TlsTest, MissingCaFileNamesTheFlag) {
  Config c = ShortTlsRun();
  c.target = "127.0.0.1:1";
  c.tls_ca = "/nonexistent/ca.pem";
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "--tls_ca=/nonexistent/ca.pem: "))
      << r.status();
}

TEST(TlsTest, TlsFlagsAreValidated) {
  Config c;
  c.tls_ca = "ca.pem";
  EXPECT_EQ(Validate(c).message(), "--tls_ca=ca.pem: needs --tls");
  c = Config();
  c.tls_insecure = true;
  EXPECT_EQ(Validate(c).message(), "--tls_insecure=true: needs --tls");
  c.tls = true;
  c.target = "127.0.0.1:1";
  c.tls_ca = "ca.pem";
  EXPECT_EQ(Validate(c).message(),
            "--tls_insecure=true: contradicts --tls_ca (verify or not, not both)");
  c = Config();
  c.tls = true;
  c.tls_ca = "ca.pem";
  EXPECT_TRUE(absl::StartsWith(Validate(c).message(), "--tls_ca=ca.pem: needs --target"))
      << Validate(c);
  c.target = "127.0.0.1:1";
  EXPECT_TRUE(Validate(c).ok()) << Validate(c);
}

}  // namespace
}  // namespace loadgen
