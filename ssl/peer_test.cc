// SslSocket and MakeSslHandler against peers no one here wrote: Debian's `openssl s_server`,
// `openssl s_client` and `curl`, run as child processes on loopback ports. A missing binary fails
// the test naming its Debian package.
#include <openssl/ssl.h>
#include <signal.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/hub.h"
#include "hub/spawn.h"
#include "ssl/certificate.h"
#include "ssl/error.h"
#include "ssl/ssl_test_util.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kPeerBound = absl::Seconds(60);  // A loaded 2-CPU machine, sanitizers.

class PeerTest : public SslTest {
 protected:
  std::string OpenSsl() {
    absl::StatusOr<std::string> tool = testing::Tool("openssl", "openssl");
    EXPECT_TRUE(tool.ok()) << tool.status();
    return tool.ok() ? *tool : "/usr/bin/openssl";
  }
  // StartSServer: `openssl s_server` on 127.0.0.1:port_ with our leaf, once it accepts.
  std::unique_ptr<testing::PeerProcess> StartSServer(std::vector<std::string> extra = {}) {
    port_ = testing::FreePort();
    std::vector<std::string> argv = {OpenSsl(), "s_server", "-accept",
                                     absl::StrCat("127.0.0.1:", port_), "-cert", pki_.cert_file,
                                     "-key", pki_.key_file, "-naccept", "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    absl::StatusOr<std::unique_ptr<testing::PeerProcess>> p = testing::PeerProcess::Start(argv);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    absl::StatusOr<size_t> ready = (*p)->ReadUntil("ACCEPT\n", kPeerBound);
    EXPECT_TRUE(ready.ok()) << ready.status();
    return std::move(*p);
  }
  std::unique_ptr<SslSocket> ConnectTo(int port, std::shared_ptr<SslContext> ctx,
                                       const std::string& sni = "localhost") {
    absl::StatusOr<Socket> s = CreateConnection("127.0.0.1", port, absl::Seconds(30));
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return nullptr;
    absl::StatusOr<std::unique_ptr<SslSocket>> tls = SslSocket::Client(std::move(*s), ctx, sni);
    EXPECT_TRUE(tls.ok()) << tls.status();
    if (!tls.ok()) return nullptr;
    absl::Status shaken = (*tls)->Handshake(kPeerBound);
    EXPECT_TRUE(shaken.ok()) << shaken;
    return shaken.ok() ? std::move(*tls) : nullptr;
  }
  // RecvUntil: reads from `tls` until what came contains `needle`.
  static std::string RecvUntil(SslSocket& tls, absl::string_view needle) {
    std::string got;
    char buf[4096];
    while (!absl::StrContains(got, needle)) {
      absl::StatusOr<size_t> n = tls.RecvInto(absl::MakeSpan(buf), kPeerBound);
      EXPECT_TRUE(n.ok()) << n.status() << " after '" << got << "'";
      if (!n.ok() || *n == 0) break;
      got.append(buf, *n);
    }
    return got;
  }

  // An SSL_set_msg_callback counting KeyUpdate messages received (handshake type 24).
  static void CountKeyUpdates(int write_p, int, int content_type, const void* buf, size_t len,
                              SSL*, void* arg) {
    if (write_p == 0 && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
        static_cast<const unsigned char*>(buf)[0] == SSL3_MT_KEY_UPDATE) {
      ++*static_cast<int*>(arg);
    }
  }

  int port_ = 0;
  int key_updates_received_ = 0;
};

TEST_F(PeerTest, OurClientAgainstOpenSslServerWithAlpnAndKeyUpdates) {
  std::unique_ptr<testing::PeerProcess> peer = StartSServer({"-alpn", "h2,http/1.1"});
  ASSERT_NE(peer, nullptr);
  SslContextOptions o;
  o.alpn = {"http/1.1", "spdy/1"};
  std::unique_ptr<SslSocket> c = ConnectTo(port_, ClientContext(o));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->version(), "TLSv1.3");
  EXPECT_EQ(c->alpn_protocol(), "http/1.1");
  ASSERT_TRUE(c->SendAll("hello from gevent\n").ok());
  ASSERT_TRUE(peer->ReadUntil("hello from gevent\n", kPeerBound).ok());
  ASSERT_TRUE(peer->Write("hello from openssl\n").ok());
  EXPECT_THAT(RecvUntil(*c, "hello from openssl\n"), HasSubstr("hello from openssl"));
  // "K": s_server sends a KeyUpdate asking for ours (its note about it goes to a buffered
  // stdout, so the message callback tells when our reads processed it); our next write carries
  // our own KeyUpdate before the data, which s_server must decrypt with the new keys.
  SSL_set_msg_callback(c->native(), &CountKeyUpdates);
  SSL_set_msg_callback_arg(c->native(), &key_updates_received_);
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    const size_t mark = peer->output().size();
    ASSERT_TRUE(peer->Write("K\n").ok());
    // Reads in the middle of which the KeyUpdate arrives (no application data comes).
    const absl::Time until = absl::Now() + kPeerBound;
    while (key_updates_received_ == i && absl::Now() < until) {
      char b[64];
      absl::StatusOr<size_t> n = c->RecvInto(absl::MakeSpan(b), absl::Milliseconds(50));
      ASSERT_TRUE(absl::IsDeadlineExceeded(n.status())) << n.status();
    }
    ASSERT_EQ(key_updates_received_, i + 1);
    const std::string down = absl::StrCat("after key update ", i, "\n");
    ASSERT_TRUE(peer->Write(down).ok());
    EXPECT_THAT(RecvUntil(*c, down), HasSubstr(down));
    const std::string up = absl::StrCat("reply ", i, "\n");
    ASSERT_TRUE(c->SendAll(up).ok());
    ASSERT_TRUE(peer->ReadUntil(up, kPeerBound, mark).ok());
  }
  // Ours too: the peer must decrypt what follows.
  ASSERT_TRUE(c->KeyUpdate(/*request_peer=*/true).ok());
  ASSERT_TRUE(c->SendAll("after our update\n").ok());
  ASSERT_TRUE(peer->ReadUntil("after our update\n", kPeerBound).ok());
  ASSERT_TRUE(c->ShutdownWrite().ok());
  absl::StatusOr<int> code = peer->Wait(kPeerBound);
  ASSERT_TRUE(code.ok()) << code.status();
}

TEST_F(PeerTest, SniSelectsOpenSslServersSecondCertificate) {
  CertificateOptions other;
  other.dns_names = {"other.test"};
  other.ip_addresses.clear();
  other.issuer = &pki_.ca;
  absl::StatusOr<Certificate> cert2 = MakeSelfSignedCertificate(other);
  ASSERT_TRUE(cert2.ok());
  ASSERT_TRUE(testing::WriteFile(dir_ + "/cert2.pem", cert2->certificate_pem).ok());
  ASSERT_TRUE(testing::WriteFile(dir_ + "/key2.pem", cert2->private_key_pem).ok());
  std::unique_ptr<testing::PeerProcess> peer =
      StartSServer({"-servername", "other.test", "-cert2", dir_ + "/cert2.pem", "-key2",
                    dir_ + "/key2.pem"});
  ASSERT_NE(peer, nullptr);
  SslContextOptions o;
  // The default certificate names only localhost: verifying "other.test" works only if our SNI
  // made s_server switch.
  std::unique_ptr<SslSocket> c = ConnectTo(port_, ClientContext(o), "other.test");
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendAll("sni ok\n").ok());
  ASSERT_TRUE(peer->ReadUntil("sni ok\n", kPeerBound).ok());
}

TEST_F(PeerTest, OurClientRejectsASelfSignedOpenSslServer) {
  absl::StatusOr<Certificate> self = MakeSelfSignedCertificate();
  ASSERT_TRUE(self.ok());
  ASSERT_TRUE(testing::WriteFile(pki_.cert_file, self->certificate_pem).ok());
  ASSERT_TRUE(testing::WriteFile(pki_.key_file, self->private_key_pem).ok());
  std::unique_ptr<testing::PeerProcess> peer = StartSServer();
  ASSERT_NE(peer, nullptr);
  absl::StatusOr<Socket> s = CreateConnection("127.0.0.1", port_, absl::Seconds(30));
  ASSERT_TRUE(s.ok());
  auto tls = SslSocket::Client(std::move(*s), ClientContext(), "localhost");
  ASSERT_TRUE(tls.ok());
  absl::Status shaken = (*tls)->Handshake(kPeerBound);
  ASSERT_FALSE(shaken.ok());
  EXPECT_THAT(shaken.message(), HasSubstr("certificate verify failed: self-signed certificate"));
}

TEST_F(PeerTest, OurServerAgainstOpenSslClientWithKeyUpdatesAndMutualTls) {
  SslContextOptions so;
  so.verify_peer = true;
  so.ca_pem = pki_.ca.certificate_pem;
  StartServer(EchoHandler(), {}, ServerContext(so));
  CertificateOptions client;
  client.common_name = "s_client";
  client.issuer = &pki_.ca;
  absl::StatusOr<Certificate> cc = MakeSelfSignedCertificate(client);
  ASSERT_TRUE(cc.ok());
  ASSERT_TRUE(testing::WriteFile(dir_ + "/client.pem", cc->certificate_pem).ok());
  ASSERT_TRUE(testing::WriteFile(dir_ + "/client.key", cc->private_key_pem).ok());
  absl::StatusOr<std::unique_ptr<testing::PeerProcess>> p = testing::PeerProcess::Start(
      {OpenSsl(), "s_client", "-connect", absl::StrCat("127.0.0.1:", server_->port()),
       "-servername", "localhost", "-verify_hostname", "localhost", "-CAfile", pki_.ca_file,
       "-verify_return_error", "-cert", dir_ + "/client.pem", "-key", dir_ + "/client.key"});
  ASSERT_TRUE(p.ok()) << p.status();
  testing::PeerProcess& peer = **p;
  ASSERT_TRUE(peer.ReadUntil("Verify return code: 0 (ok)", kPeerBound).ok());
  ASSERT_TRUE(peer.Write("ping one\n").ok());
  absl::StatusOr<size_t> at = peer.ReadUntil("ping one\n", kPeerBound);
  ASSERT_TRUE(at.ok()) << at.status();
  // "K": s_client sends a KeyUpdate asking for ours, in the middle of our server's reads.
  // s_client takes a command only alone in one read of stdin: wait for its note first.
  ASSERT_TRUE(peer.Write("K\n").ok());
  at = peer.ReadUntil("KEYUPDATE", kPeerBound, *at);
  ASSERT_TRUE(at.ok()) << at.status();
  ASSERT_TRUE(peer.Write("ping two\n").ok());
  at = peer.ReadUntil("ping two\n", kPeerBound, *at);
  ASSERT_TRUE(at.ok()) << at.status();
  ASSERT_TRUE(peer.Write("k\n").ok());
  at = peer.ReadUntil("KEYUPDATE", kPeerBound, *at);
  ASSERT_TRUE(at.ok()) << at.status();
  ASSERT_TRUE(peer.Write("ping three\n").ok());
  ASSERT_TRUE(peer.ReadUntil("ping three\n", kPeerBound, *at).ok());
  peer.CloseStdin();  // s_client: close_notify, then exit.
  absl::StatusOr<int> code = peer.Wait(kPeerBound);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << peer.output();
  EXPECT_EQ(ssl_stats_->Snapshot().handshakes, 1u);

  // Without a client certificate: refused, and the server goes on.
  p = testing::PeerProcess::Start({OpenSsl(), "s_client", "-connect",
                                   absl::StrCat("127.0.0.1:", server_->port()), "-CAfile",
                                   pki_.ca_file, "-servername", "localhost"});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->ReadUntil("certificate required", kPeerBound).ok());
  (*p)->CloseStdin();
  (void)(*p)->Wait(kPeerBound);
  EXPECT_EQ(ssl_stats_->Snapshot().failed_protocol, 1u);
}

TEST_F(PeerTest, OurServerAgainstCurl) {
  absl::StatusOr<std::string> curl = testing::Tool("curl", "curl");
  ASSERT_TRUE(curl.ok()) << curl.status();
  SslContextOptions so;
  so.alpn = {"http/1.1"};
  std::string alpn, request;
  StartServer([&](SslSocket& conn, const SocketAddress&) {
    alpn = conn.alpn_protocol();
    char buf[4096];
    while (!absl::StrContains(request, "\r\n\r\n")) {
      absl::StatusOr<size_t> n = conn.RecvInto(absl::MakeSpan(buf), kPeerBound);
      if (!n.ok() || *n == 0) return;
      request.append(buf, *n);
    }
    (void)conn.SendAll(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
        "Connection: close\r\n\r\nhello curl\n", kPeerBound);
  }, {}, ServerContext(so));
  const std::string url = absl::StrCat("https://localhost:", server_->port(), "/tls");
  absl::StatusOr<std::unique_ptr<testing::PeerProcess>> p = testing::PeerProcess::Start(
      {*curl, "-sS", "--max-time", "60", "--cacert", pki_.ca_file, url});
  ASSERT_TRUE(p.ok());
  absl::StatusOr<int> code = (*p)->Wait(kPeerBound);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*p)->output();
  EXPECT_EQ((*p)->output(), "hello curl\n");
  EXPECT_EQ(alpn, "http/1.1");
  EXPECT_THAT(request, HasSubstr("GET /tls HTTP/1.1"));

  // Without the CA curl refuses our certificate (exit 60), and the server counts the alert and
  // serves the next client.
  p = testing::PeerProcess::Start({*curl, "-sS", "--max-time", "60", url});
  ASSERT_TRUE(p.ok());
  code = (*p)->Wait(kPeerBound);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 60) << (*p)->output();
  EXPECT_EQ(ssl_stats_->Snapshot().failed_protocol, 1u);
  p = testing::PeerProcess::Start({*curl, "-sS", "--max-time", "60", "--cacert", pki_.ca_file, url});
  ASSERT_TRUE(p.ok());
  code = (*p)->Wait(kPeerBound);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0) << (*p)->output();
  EXPECT_EQ(ssl_stats_->Snapshot().handshakes, 2u);
}

TEST_F(PeerTest, MissingToolNamesItsPackage) {
  absl::StatusOr<std::string> t = testing::Tool("no-such-tool-here", "some-package");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("install the Debian package some-package"));
}

}  // namespace
}  // namespace gevent
