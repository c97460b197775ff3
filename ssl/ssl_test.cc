// SslContext, MakeSelfSignedCertificate and SslSocket between our own client and server (the
// tests against peers no one here wrote are in peer_test.cc).
#include "ssl/ssl_socket.h"

#include <sys/socket.h>

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/event.h"
#include "hub/hub.h"
#include "hub/spawn.h"
#include "ssl/certificate.h"
#include "ssl/error.h"
#include "ssl/ssl_test_util.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

TEST_F(SslTest, ContextReportsOpenSslReasonsForBadFiles) {
  SslContextOptions o;
  o.role = SslRole::kServer;
  o.cert_chain_file = dir_ + "/missing.pem";
  o.key_file = pki_.key_file;
  absl::StatusOr<std::shared_ptr<SslContext>> ctx = SslContext::Create(o);
  ASSERT_FALSE(ctx.ok());
  EXPECT_THAT(ctx.status().message(), HasSubstr("cert_chain_file"));
  EXPECT_THAT(ctx.status().message(), HasSubstr("missing.pem"));
  EXPECT_THAT(absl::AsciiStrToLower(ctx.status().message()), HasSubstr("no such file"));

  // A key that is not the certificate's.
  absl::StatusOr<Certificate> other = MakeSelfSignedCertificate();
  ASSERT_TRUE(other.ok());
  o.cert_chain_file = pki_.cert_file;
  o.key_file.clear();
  o.key_pem = other->private_key_pem;
  ctx = SslContext::Create(o);
  ASSERT_FALSE(ctx.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ctx.status())) << ctx.status();
  EXPECT_THAT(ctx.status().message(), HasSubstr("values mismatch"));

  // A server without a certificate; a key in a file that is not PEM.
  SslContextOptions bare;
  bare.role = SslRole::kServer;
  EXPECT_TRUE(absl::IsInvalidArgument(SslContext::Create(bare).status()));
  ASSERT_TRUE(testing::WriteFile(dir_ + "/junk.pem", "not a key").ok());
  o.key_pem.clear();
  o.key_file = dir_ + "/junk.pem";
  ctx = SslContext::Create(o);
  ASSERT_FALSE(ctx.ok());
  EXPECT_THAT(ctx.status().message(), HasSubstr("key_file"));
}

TEST_F(SslTest, CertificateOptionsAreChecked) {
  CertificateOptions bad_ip;
  bad_ip.ip_addresses = {"not-an-ip"};
  EXPECT_TRUE(absl::IsInvalidArgument(MakeSelfSignedCertificate(bad_ip).status()));
  CertificateOptions window;
  window.not_before = absl::Now();
  window.not_after = absl::Now() - absl::Hours(1);
  EXPECT_TRUE(absl::IsInvalidArgument(MakeSelfSignedCertificate(window).status()));
  absl::StatusOr<Certificate> c = MakeSelfSignedCertificate();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->certificate_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(c->private_key_pem, HasSubstr("BEGIN PRIVATE KEY"));
}

TEST_F(SslTest, EchoOverTls13WithHostnameAndIpChecks) {
  StartServer(EchoHandler());
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    std::unique_ptr<SslSocket> c = Connect(nullptr, host);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->version(), "TLSv1.3");
    ASSERT_TRUE(c->SendAll("hello over tls").ok());
    absl::StatusOr<std::string> got = c->Recv(100);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, "hello over tls");
    ASSERT_TRUE(c->ShutdownWrite().ok());
    absl::StatusOr<size_t> end = c->RecvInto(absl::MakeSpan(std::string(10, ' ').data(), 10));
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(*end, 0u);  // The server's close_notify after our own.
  }
  EXPECT_EQ(ssl_stats_->Snapshot().handshakes, 2u);
  EXPECT_TRUE(last_error_.ok()) << last_error_;
}

TEST_F(SslTest, Tls12WhenTheServerCapsTheVersion) {
  SslContextOptions o;
  o.max_version = kTls12;
  StartServer(EchoHandler(), {}, ServerContext(o));
  std::unique_ptr<SslSocket> c = Connect();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->version(), "TLSv1.2");
  ASSERT_TRUE(c->SendAll("twelve").ok());
  EXPECT_EQ(*c->Recv(100), "twelve");
  EXPECT_TRUE(absl::IsFailedPrecondition(c->KeyUpdate(true)));
}

TEST_F(SslTest, AlpnAndSniBetweenOurOwnEnds) {
  SslContextOptions so;
  so.alpn = {"h2", "http/1.1"};
  std::string seen_sni, seen_alpn;
  StartServer([&](SslSocket& conn, const SocketAddress&) {
    seen_sni = conn.server_name();
    seen_alpn = conn.alpn_protocol();
  }, {}, ServerContext(so));
  SslContextOptions co;
  co.alpn = {"http/1.1", "spdy/3"};
  std::unique_ptr<SslSocket> c = Connect(ClientContext(co));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->alpn_protocol(), "http/1.1");
  char b[8];
  EXPECT_EQ(*c->RecvInto(absl::MakeSpan(b)), 0u);  // The handler returned: close_notify.
  EXPECT_EQ(seen_sni, "localhost");
  EXPECT_EQ(seen_alpn, "http/1.1");
}

TEST_F(SslTest, MutualTls) {
  SslContextOptions so;
  so.verify_peer = true;
  so.ca_pem = pki_.ca.certificate_pem;
  std::string subject;
  StartServer([&](SslSocket& conn, const SocketAddress&) {
    subject = conn.peer_subject();
    (void)conn.SendAll("welcome");
  }, {}, ServerContext(so));
  CertificateOptions client_cert;
  client_cert.common_name = "client one";
  client_cert.issuer = &pki_.ca;
  absl::StatusOr<Certificate> cc = MakeSelfSignedCertificate(client_cert);
  ASSERT_TRUE(cc.ok());
  SslContextOptions co;
  co.cert_chain_pem = cc->certificate_pem;
  co.key_pem = cc->private_key_pem;
  std::unique_ptr<SslSocket> c = Connect(ClientContext(co));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(*c->Recv(100), "welcome");
  EXPECT_THAT(subject, HasSubstr("CN=client one"));

  // Without a certificate: TLS 1.3 reports the server's refusal on the first read.
  std::unique_ptr<SslSocket> anon = Connect();
  ASSERT_NE(anon, nullptr);
  absl::StatusOr<std::string> r = anon->Recv(100, absl::Seconds(30));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("certificate required"));
  EXPECT_EQ(ssl_stats_->Snapshot().failed_protocol, 1u);
}

// A client and a server over TCP loopback with nothing else, for the error cases.
class SslPairTest : public SslTest {
 protected:
  // Accepts one connection on a listener and returns the connected pair (client, server side).
  std::pair<Socket, Socket> TcpPair() {
    Socket listener = *Socket::Create(AF_INET, SOCK_STREAM);
    EXPECT_TRUE(listener.Bind(SocketAddress::Loopback(0)).ok());
    EXPECT_TRUE(listener.Listen().ok());
    absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", listener.LocalAddress()->port(),
                                                absl::Seconds(30));
    EXPECT_TRUE(c.ok());
    absl::StatusOr<Socket> s = listener.Accept(nullptr, absl::Seconds(30));
    EXPECT_TRUE(s.ok());
    return {std::move(*c), std::move(*s)};
  }
  // Handshake of both ends in two greenlets; returns the client's and the server's status.
  std::pair<absl::Status, absl::Status> Shake(SslSocket& client, SslSocket& server) {
    absl::Status cs, ss;
    GreenletRef g = Spawn([&] { ss = server.Handshake(absl::Seconds(30)); });
    cs = client.Handshake(absl::Seconds(30));
    g->Join();
    return {cs, ss};
  }
  std::pair<std::unique_ptr<SslSocket>, std::unique_ptr<SslSocket>> TlsPair(
      std::shared_ptr<SslContext> cctx, std::shared_ptr<SslContext> sctx,
      const std::string& host = "localhost") {
    auto [c, s] = TcpPair();
    auto client = SslSocket::Client(std::move(c), cctx, host);
    auto server = SslSocket::Server(std::move(s), sctx);
    EXPECT_TRUE(client.ok() && server.ok());
    return {std::move(*client), std::move(*server)};
  }
};

TEST_F(SslPairTest, VerificationFailuresNameTheReason) {
  struct Case {
    std::string name;
    CertificateOptions leaf;
    bool self_signed;
    std::string host;
    std::string reason;
  };
  CertificateOptions expired;
  expired.not_before = absl::Now() - absl::Hours(48);
  expired.not_after = absl::Now() - absl::Hours(24);
  std::vector<Case> cases = {
      {"wrong host", {}, false, "wrong.example", "hostname mismatch"},
      {"wrong ip", {}, false, "127.0.0.2", "IP address mismatch"},
      {"expired", expired, false, "localhost", "certificate has expired"},
      {"self-signed", {}, true, "localhost", "self-signed certificate"},
  };
  for (Case& k : cases) {
    SCOPED_TRACE(k.name);
    if (!k.self_signed) k.leaf.issuer = &pki_.ca;
    absl::StatusOr<Certificate> leaf = MakeSelfSignedCertificate(k.leaf);
    ASSERT_TRUE(leaf.ok());
    SslContextOptions so;
    so.cert_chain_pem = leaf->certificate_pem;
    so.key_pem = leaf->private_key_pem;
    auto [client, server] = TlsPair(ClientContext(), ServerContext(so), k.host);
    const absl::Time start = absl::Now();
    auto [cs, ss] = Shake(*client, *server);
    EXPECT_LT(absl::Now() - start, absl::Seconds(20));
    ASSERT_FALSE(cs.ok());
    EXPECT_TRUE(absl::IsUnavailable(cs)) << cs;
    EXPECT_THAT(cs.message(), HasSubstr("certificate verify failed: " + k.reason));
    EXPECT_FALSE(ss.ok());  // The client's alert.
    EXPECT_THAT(ss.message(), HasSubstr("alert"));
  }
}

TEST_F(SslPairTest, PlainTextPeersOnEitherSide) {
  {  // A plain HTTP client talking to a TLS server.
    auto [c, s] = TcpPair();
    auto server = *SslSocket::Server(std::move(s), ServerContext());
    ASSERT_TRUE(c.SendAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok());
    absl::Status ss = server->Handshake(absl::Seconds(30));
    ASSERT_FALSE(ss.ok());
    EXPECT_THAT(ss.message(), HasSubstr("http request"));
    EXPECT_TRUE(SslErrorCode(ss).has_value());
  }
  {  // A TLS client whose server speaks plain text.
    auto [c, s] = TcpPair();
    auto client = *SslSocket::Client(std::move(c), ClientContext(), "localhost");
    ASSERT_TRUE(s.SendAll("220 smtp.example ESMTP ready\r\n").ok());
    absl::Status cs = client->Handshake(absl::Seconds(30));
    ASSERT_FALSE(cs.ok());
    EXPECT_THAT(cs.message(), HasSubstr("wrong version number"));
  }
}

TEST_F(SslPairTest, HandshakeTimeoutIsDeadlineExceeded) {
  auto [c, s] = TcpPair();
  auto client = *SslSocket::Client(std::move(c), ClientContext(), "localhost");
  // The server reads the ClientHello and never answers.
  const absl::Time start = absl::Now();
  absl::Status cs = client->Handshake(absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(cs)) << cs;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(190));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  // The socket's default timeout applies when none is given.
  auto [c2, s2] = TcpPair();
  c2.SetTimeout(absl::Milliseconds(100));
  auto client2 = *SslSocket::Client(std::move(c2), ClientContext(), "localhost");
  EXPECT_TRUE(absl::IsDeadlineExceeded(client2->Handshake()));
}

TEST_F(SslPairTest, BulkBothWaysAtOnce) {
  auto [client, server] = TlsPair(ClientContext(), ServerContext());
  auto [cs, ss] = Shake(*client, *server);
  ASSERT_TRUE(cs.ok() && ss.ok()) << cs << " " << ss;
  const std::string up = Pattern(4 << 20);
  const std::string down = Pattern((3 << 20) + 17);
  std::string got_up, got_down;
  auto reader = [](SslSocket& s, std::string& into, size_t want) {
    std::string buf(65536, '\0');  // Not on the greenlet's 64 KiB stack.
    while (into.size() < want) {
      absl::StatusOr<size_t> n = s.RecvInto(absl::MakeSpan(buf), absl::Seconds(60));
      ASSERT_TRUE(n.ok()) << n.status();
      ASSERT_GT(*n, 0u);
      into.append(buf.data(), *n);
    }
  };
  std::vector<GreenletRef> g;
  g.push_back(Spawn([&] { ASSERT_TRUE(client->SendAll(up, absl::Seconds(60)).ok()); }));
  g.push_back(Spawn([&] { ASSERT_TRUE(server->SendAll(down, absl::Seconds(60)).ok()); }));
  g.push_back(Spawn([&] { reader(*server, got_up, up.size()); }));
  g.push_back(Spawn([&] { reader(*client, got_down, down.size()); }));
  JoinAll(g);
  EXPECT_TRUE(got_up == up);
  EXPECT_TRUE(got_down == down);
}

TEST_F(SslPairTest, KeyUpdatesBothWaysMidStream) {
  auto [client, server] = TlsPair(ClientContext(), ServerContext());
  auto [cs, ss] = Shake(*client, *server);
  ASSERT_TRUE(cs.ok() && ss.ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client->KeyUpdate(/*request_peer=*/true).ok());
    ASSERT_TRUE(client->SendAll(absl::StrCat("round ", i)).ok());
    EXPECT_EQ(*server->Recv(100), absl::StrCat("round ", i));
    ASSERT_TRUE(server->SendAll("ack").ok());  // Carries the server's own KeyUpdate first.
    EXPECT_EQ(*client->Recv(100), "ack");
  }
}

TEST_F(SslPairTest, CloseNotifyVersusUnexpectedEof) {
  {
    auto [client, server] = TlsPair(ClientContext(), ServerContext());
    auto [cs, ss] = Shake(*client, *server);
    ASSERT_TRUE(cs.ok() && ss.ok());
    ASSERT_TRUE(client->SendAll("last words").ok());
    ASSERT_TRUE(client->ShutdownWrite().ok());
    EXPECT_EQ(*server->Recv(100), "last words");
    absl::StatusOr<size_t> end = server->RecvInto(absl::MakeSpan(std::string(8, ' ').data(), 8));
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(*end, 0u);
    ASSERT_TRUE(server->SendAll("still writing").ok());  // Half-closed: the other way works.
    EXPECT_EQ(*client->Recv(100), "still writing");
  }
  {
    auto [client, server] = TlsPair(ClientContext(), ServerContext());
    auto [cs, ss] = Shake(*client, *server);
    ASSERT_TRUE(cs.ok() && ss.ok());
    ASSERT_TRUE(client->SendAll("truncated").ok());
    // TCP's FIN, no close_notify. (A close would reset: the server's session tickets are unread.)
    ASSERT_TRUE(client->socket().Shutdown(SHUT_WR).ok());
    EXPECT_EQ(*server->Recv(100), "truncated");
    absl::StatusOr<std::string> r = server->Recv(100);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
    EXPECT_TRUE(IsSslUnexpectedEof(r.status())) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("unexpected eof"));
  }
}

TEST_F(SslPairTest, UnwrapGivesThePlainSocketBack) {
  auto [client, server] = TlsPair(ClientContext(), ServerContext());
  auto [cs, ss] = Shake(*client, *server);
  ASSERT_TRUE(cs.ok() && ss.ok());
  absl::StatusOr<Socket> plain_server;
  GreenletRef g = Spawn([&] { plain_server = server->Unwrap(absl::Seconds(30)); });
  absl::StatusOr<Socket> plain_client = client->Unwrap(absl::Seconds(30));
  g->Join();
  ASSERT_TRUE(plain_client.ok()) << plain_client.status();
  ASSERT_TRUE(plain_server.ok()) << plain_server.status();
  ASSERT_TRUE(plain_client->SendAll("clear text").ok());
  EXPECT_EQ(*plain_server->Recv(100), "clear text");
  EXPECT_TRUE(absl::IsFailedPrecondition(client->SendAll("x")));
}

TEST_F(SslPairTest, ResetInTheMiddleOfARecord) {
  auto [client, server] = TlsPair(ClientContext(), ServerContext());
  auto [cs, ss] = Shake(*client, *server);
  ASSERT_TRUE(cs.ok() && ss.ok());
  // The header of a 64-byte application-data record, 10 bytes of it, then a reset.
  Socket& raw = client->socket();
  ASSERT_TRUE(raw.SendAll(std::string("\x17\x03\x03\x00\x40", 5) + std::string(10, 'x')).ok());
  struct linger lg = {1, 0};
  ASSERT_EQ(setsockopt(raw.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  ASSERT_TRUE(client->Close().ok());
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> r = server->Recv(100, absl::Seconds(30));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("ECONNRESET"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

TEST_F(SslPairTest, CloseFromAnotherGreenletWakesTheReader) {
  auto [client, server] = TlsPair(ClientContext(), ServerContext());
  auto [cs, ss] = Shake(*client, *server);
  ASSERT_TRUE(cs.ok() && ss.ok());
  absl::StatusOr<std::string> r;
  GreenletRef g = Spawn([&] { r = server->Recv(100, absl::Seconds(30)); });
  Sleep(absl::ZeroDuration());  // The reader parks.
  ASSERT_TRUE(server->Close().ok());
  ASSERT_TRUE(g->Join(absl::Seconds(20)));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("closed in another greenlet"));
  EXPECT_TRUE(absl::IsFailedPrecondition(server->SendAll("x")));
  EXPECT_TRUE(server->Close().ok());  // Twice is OK.
}

TEST_F(SslPairTest, TwoReadersAtOnceIsMisuse) {
  auto [client, server] = TlsPair(ClientContext(), ServerContext());
  auto [cs, ss] = Shake(*client, *server);
  ASSERT_TRUE(cs.ok() && ss.ok());
  absl::StatusOr<std::string> first;
  GreenletRef g = Spawn([&] { first = server->Recv(100, absl::Seconds(30)); });
  Sleep(absl::ZeroDuration());
  EXPECT_THROW((void)server->Recv(100, absl::Seconds(30)), ConcurrentObjectUseError);
  ASSERT_TRUE(client->SendAll("for the first").ok());
  ASSERT_TRUE(g->Join(absl::Seconds(20)));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "for the first");
}

TEST_F(SslPairTest, MisconfiguredClientsAreRejected) {
  auto [c, s] = TcpPair();
  EXPECT_TRUE(absl::IsInvalidArgument(SslSocket::Client(std::move(c), ClientContext(), "").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(SslSocket::Server(std::move(s), ClientContext()).status()));
}

}  // namespace
}  // namespace gevent
