// MakeSslHandler in StreamServer and MultiThreadServer: the handshake in the connection's greenlet
// under its own timeout, failures counted by reason, the server serving the others meanwhile.
#include "ssl/server.h"

#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/hub.h"
#include "hub/spawn.h"
#include "ssl/ssl_test_util.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

class SslServerTest : public SslTest {
 protected:
  // Plain: a plain TCP connection to the server.
  Socket Plain() {
    absl::StatusOr<Socket> s = CreateConnection("127.0.0.1", server_->port(), absl::Seconds(30));
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : Socket();
  }
  // Dropped: whether the server closed `s` (end of stream or reset) within the bound.
  static bool Dropped(Socket& s) {
    char b[256];
    for (;;) {
      absl::StatusOr<size_t> n = s.RecvInto(absl::MakeSpan(b), absl::Seconds(30));
      if (!n.ok()) return absl::IsUnavailable(n.status());
      if (*n == 0) return true;
    }
  }
  void EchoOnce(const std::string& text) {
    std::unique_ptr<SslSocket> c = Connect(nullptr, "127.0.0.1");
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->SendAll(text).ok());
    absl::StatusOr<std::string> got = c->Recv(text.size() + 10);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, text);
  }
};

TEST_F(SslServerTest, SilentAndStalledClientsLoseTheirPoolSlotAtTheHandshakeTimeout) {
  SslServerOptions tls;
  tls.handshake_timeout = absl::Milliseconds(300);
  tls.context = ServerContext();
  ssl_stats_ = std::make_shared<SslServerStats>();
  StreamServerOptions options;
  options.pool_size = 2;
  server_ = std::make_unique<StreamServer>(SocketAddress::Loopback(0),
                                           MakeSslHandler(EchoHandler(), tls, ssl_stats_), options);
  ASSERT_TRUE(server_->Start().ok());
  Socket silent = Plain();                           // says nothing
  Socket stalled = Plain();                          // stops in the middle of a ClientHello
  ASSERT_TRUE(stalled.SendAll(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)).ok());
  // Both slots are taken: this client waits in the kernel's backlog until one is freed.
  const absl::Time start = absl::Now();
  EchoOnce("served once a slot is free");
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_TRUE(Dropped(silent));
  EXPECT_TRUE(Dropped(stalled));
  const SslServerStatsSnapshot s = ssl_stats_->Snapshot();
  EXPECT_EQ(s.failed_timeout, 2u);
  EXPECT_EQ(s.handshakes, 1u);
}

TEST_F(SslServerTest, BadClientsAreCountedByReasonAndTheServerGoesOn) {
  StartServer(EchoHandler());
  {  // Plain HTTP instead of a ClientHello.
    Socket http = Plain();
    ASSERT_TRUE(http.SendAll("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").ok());
    EXPECT_TRUE(Dropped(http));
  }
  {  // Garbage that is not even HTTP.
    Socket junk = Plain();
    ASSERT_TRUE(junk.SendAll(std::string(64, '\x01')).ok());
    EXPECT_TRUE(Dropped(junk));
  }
  EchoOnce("in between");
  {  // A reset in the middle of the ClientHello record.
    Socket reset = Plain();
    ASSERT_TRUE(reset.SendAll(std::string("\x16\x03\x01\x02\x00\x01\x00", 7)).ok());
    struct linger lg = {1, 0};
    ASSERT_EQ(setsockopt(reset.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    ASSERT_TRUE(reset.Close().ok());
  }
  {  // A clean close before any byte.
    Socket gone = Plain();
    ASSERT_TRUE(gone.Close().ok());
  }
  EchoOnce("still serving");
  // Stop waits (up to its grace) for the handlers still running to finish and count.
  server_->Stop(absl::Seconds(30));
  const SslServerStatsSnapshot s = ssl_stats_->Snapshot();
  EXPECT_EQ(s.failed_protocol, 2u);
  EXPECT_EQ(s.failed_closed, 2u);
  EXPECT_EQ(s.failed_timeout, 0u);
  EXPECT_EQ(s.handshakes, 2u);
}

TEST_F(SslServerTest, WorksInAMultiThreadServer) {
  SslServerOptions tls;
  tls.context = ServerContext();
  auto stats = std::make_shared<SslServerStats>();
  MultiThreadServer server(SocketAddress::Loopback(0), MakeSslHandler(EchoHandler(), tls, stats),
                           2);
  ASSERT_TRUE(server.Start().ok());
  std::vector<GreenletRef> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    clients.push_back(Spawn([&, i] {
      absl::StatusOr<std::unique_ptr<SslSocket>> c =
          CreateSslConnection("127.0.0.1", server.port(), ClientContext(), absl::Seconds(30));
      ASSERT_TRUE(c.ok()) << c.status();
      const std::string text = "client " + std::to_string(i);
      ASSERT_TRUE((*c)->SendAll(text).ok());
      absl::StatusOr<std::string> got = (*c)->Recv(100);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, text);
      ASSERT_TRUE((*c)->ShutdownWrite().ok());
      char b[8];
      EXPECT_EQ(*(*c)->RecvInto(absl::MakeSpan(b)), 0u);
      ++ok;
    }));
  }
  JoinAll(clients);
  server.Stop();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(stats->Snapshot().handshakes, 8u);
}

TEST_F(SslServerTest, MisuseThrows) {
  SslServerOptions tls;
  EXPECT_THROW(MakeSslHandler(EchoHandler(), tls), std::invalid_argument);
  tls.context = ClientContext();
  EXPECT_THROW(MakeSslHandler(EchoHandler(), tls), std::invalid_argument);
  tls.context = ServerContext();
  tls.handshake_timeout = absl::ZeroDuration();
  EXPECT_THROW(MakeSslHandler(EchoHandler(), tls), std::invalid_argument);
  tls.handshake_timeout = absl::Seconds(1);
  EXPECT_THROW(MakeSslHandler(nullptr, tls), std::invalid_argument);
}

}  // namespace
}  // namespace gevent
