// //socket:echo_server --tls_cert/--tls_key: the binary run with a certificate made at test
// time, spoken to over TLS by our client and by `openssl s_client`; bad TLS flags exit 2.
#include <signal.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/spawn.h"
#include "ssl/ssl_test_util.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kBound = absl::Seconds(60);

std::string EchoServerBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/", workspace != nullptr ? workspace : "",
                      "/socket/echo_server");
}

class EchoServerTlsTest : public SslTest {
 protected:
  std::unique_ptr<testing::PeerProcess> Run(std::vector<std::string> args) {
    args.insert(args.begin(), EchoServerBinary());
    absl::StatusOr<std::unique_ptr<testing::PeerProcess>> p = testing::PeerProcess::Start(args);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }
  // Port: from "echo_server: listening on 127.0.0.1:<port> with ...".
  int Port(testing::PeerProcess& p) {
    absl::StatusOr<size_t> at = p.ReadUntil("listening on 127.0.0.1:", kBound);
    EXPECT_TRUE(at.ok()) << at.status();
    if (!at.ok()) return -1;
    absl::StatusOr<size_t> end = p.ReadUntil(" with", kBound, *at);
    EXPECT_TRUE(end.ok()) << end.status();
    int port = -1;
    EXPECT_TRUE(absl::SimpleAtoi(p.output().substr(*at, *end - 5 - *at), &port)) << p.output();
    return port;
  }
};

TEST_F(EchoServerTlsTest, EchoesOverTlsToOurClientAndToOpenSslClient) {
  std::unique_ptr<testing::PeerProcess> server =
      Run({"--port=0", "--tls_cert=" + pki_.cert_file, "--tls_key=" + pki_.key_file});
  ASSERT_NE(server, nullptr);
  const int port = Port(*server);
  ASSERT_GT(port, 0);
  EXPECT_THAT(server->output(), HasSubstr(", TLS"));
  {
    absl::StatusOr<std::unique_ptr<SslSocket>> c =
        CreateSslConnection("127.0.0.1", port, ClientContext(), absl::Seconds(30));
    ASSERT_TRUE(c.ok()) << c.status();
    const std::string message = Pattern(1 << 20);  // Larger than the echo buffer and a record.
    std::string got;
    GreenletRef writer = Spawn([&] { ASSERT_TRUE((*c)->SendAll(message, kBound).ok()); });
    std::string buf(65536, '\0');
    while (got.size() < message.size()) {
      absl::StatusOr<size_t> n = (*c)->RecvInto(absl::MakeSpan(buf), kBound);
      ASSERT_TRUE(n.ok()) << n.status();
      ASSERT_GT(*n, 0u);
      got.append(buf.data(), *n);
    }
    writer->Join();
    EXPECT_TRUE(got == message);
    ASSERT_TRUE((*c)->ShutdownWrite().ok());
    char b[8];
    absl::StatusOr<size_t> end = (*c)->RecvInto(absl::MakeSpan(b), kBound);
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(*end, 0u);  // The server's close_notify.
  }
  {  // A plain TCP client gets no echo: the server drops it as a bad ClientHello.
    absl::StatusOr<Socket> plain = CreateConnection("127.0.0.1", port, absl::Seconds(30));
    ASSERT_TRUE(plain.ok());
    ASSERT_TRUE(plain->SendAll("plain text\r\n\r\n").ok());
    char b[64];
    absl::StatusOr<size_t> n = plain->RecvInto(absl::MakeSpan(b), kBound);
    EXPECT_TRUE(!n.ok() || *n == 0 || std::string(b, *n).find("plain") == std::string::npos);
  }
  absl::StatusOr<std::string> openssl = testing::Tool("openssl", "openssl");
  ASSERT_TRUE(openssl.ok()) << openssl.status();
  absl::StatusOr<std::unique_ptr<testing::PeerProcess>> sc = testing::PeerProcess::Start(
      {*openssl, "s_client", "-connect", absl::StrCat("127.0.0.1:", port), "-servername",
       "localhost", "-CAfile", pki_.ca_file, "-verify_return_error"});  // -quiet would ignore EOF
  ASSERT_TRUE(sc.ok());
  ASSERT_TRUE((*sc)->Write("echo me please\n").ok());
  ASSERT_TRUE((*sc)->ReadUntil("echo me please\n", kBound).ok());
  (*sc)->CloseStdin();  // s_client: close_notify and exit.
  absl::StatusOr<int> sc_code = (*sc)->Wait(kBound);
  ASSERT_TRUE(sc_code.ok()) << sc_code.status();
  EXPECT_EQ(*sc_code, 0) << (*sc)->output();

  server->Kill(SIGTERM);
  absl::StatusOr<int> code = server->Wait(kBound);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << server->output();
  EXPECT_THAT(server->output(), HasSubstr("SIGTERM: 3 connections"));
}

TEST_F(EchoServerTlsTest, BadTlsFlagsExitTwoNamingTheFlagAndTheReason) {
  struct Case {
    std::vector<std::string> args;
    std::string flag;
    std::string reason;
  };
  ASSERT_TRUE(testing::WriteFile(dir_ + "/junk.pem", "junk").ok());
  const std::vector<Case> cases = {
      {{"--tls_cert=" + dir_ + "/none.pem", "--tls_key=" + pki_.key_file}, "--tls_cert",
       "No such file"},
      {{"--tls_cert=" + pki_.cert_file, "--tls_key=" + dir_ + "/junk.pem"}, "--tls_key", "key_file"},
      {{"--tls_cert=" + pki_.cert_file, "--tls_key=" + pki_.ca_file}, "--tls_key", "key_file"},
      {{"--tls_cert=" + pki_.cert_file}, "--tls_key", "needed with --tls_cert"},
      {{"--tls_key=" + pki_.key_file}, "--tls_cert", "needed with --tls_key"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.flag + " " + k.reason);
    std::vector<std::string> args = k.args;
    args.push_back("--port=0");
    std::unique_ptr<testing::PeerProcess> p = Run(args);
    ASSERT_NE(p, nullptr);
    absl::StatusOr<int> code = p->Wait(kBound);
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 2) << p->output();
    EXPECT_THAT(p->output(), HasSubstr(k.flag));
    EXPECT_THAT(p->output(), HasSubstr(k.reason));
    EXPECT_THAT(p->output(), ::testing::Not(HasSubstr("listening")));
  }
}

}  // namespace
}  // namespace gevent
