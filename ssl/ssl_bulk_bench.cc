// Bulk TLS throughput over one connection: a sender and a receiver, each on its own thread and
// hub, over loopback TCP, TLS 1.3 with TLS_AES_128_GCM_SHA256 (the cipher `openssl speed -evp
// aes-128-gcm` measures), 16 KiB writes. Prints `gb_per_second=X` (decrypted bytes the receiver
// read, over the time from its first byte to the sender's close_notify). --plain: the same over
// plain TCP (the I/O ceiling the TLS figure sits under).
//
//   bazel run //ssl:ssl_bulk_bench -- [--seconds=5] [--chunk=16384] [--plain]
// benchmarks/tls.py runs it beside `openssl speed`.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "socket/address.h"
#include "socket/resolve.h"
#include "socket/socket.h"
#include "socket/stream.h"
#include "ssl/certificate.h"
#include "ssl/context.h"
#include "ssl/ssl_socket.h"

namespace {

[[noreturn]] void Die(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "ssl_bulk_bench: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               status.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Check(absl::StatusOr<T> value, absl::string_view what) {
  if (!value.ok()) Die(what, value.status());
  return *std::move(value);
}

void Check(const absl::Status& status, absl::string_view what) {
  if (!status.ok()) Die(what, status);
}

std::shared_ptr<gevent::SslContext> Context(gevent::SslRole role, const gevent::Certificate& cert) {
  gevent::SslContextOptions options;
  options.role = role;
  options.min_version = gevent::kTls13;
  options.ciphersuites = "TLS_AES_128_GCM_SHA256";
  if (role == gevent::SslRole::kServer) {
    options.cert_chain_pem = cert.certificate_pem;
    options.key_pem = cert.private_key_pem;
  } else {
    options.ca_pem = cert.certificate_pem;
    options.use_default_ca_store = false;
  }
  return Check(gevent::SslContext::Create(options), "SslContext::Create");
}

struct Received {
  std::uint64_t bytes = 0;
  absl::Duration elapsed;
};

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5;
  std::size_t chunk = 16 * 1024;
  bool plain = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    int value = 0;
    if (arg == "--plain") {
      plain = true;
    } else if (absl::ConsumePrefix(&arg, "--seconds=") && absl::SimpleAtoi(arg, &value) && value > 0) {
      seconds = value;
    } else if (absl::ConsumePrefix(&arg, "--chunk=") && absl::SimpleAtoi(arg, &value) &&
               value > 0) {
      chunk = static_cast<std::size_t>(value);
    } else {
      std::fprintf(stderr, "usage: ssl_bulk_bench [--seconds=N>0] [--chunk=BYTES>0] [--plain]\n");
      return 2;
    }
  }
  const gevent::Certificate cert =
      Check(gevent::MakeSelfSignedCertificate(), "MakeSelfSignedCertificate");
  auto server_context = Context(gevent::SslRole::kServer, cert);
  auto client_context = Context(gevent::SslRole::kClient, cert);

  std::promise<gevent::SocketAddress> listening;
  std::future<gevent::SocketAddress> address = listening.get_future();
  Received received;
  std::thread receiver([&] {
    gevent::Socket listener = Check(gevent::Socket::Create(AF_INET, SOCK_STREAM), "socket");
    Check(listener.Bind(gevent::SocketAddress::Loopback(0)), "bind");
    Check(listener.Listen(1), "listen");
    listening.set_value(Check(listener.LocalAddress(), "getsockname"));
    gevent::Socket accepted = Check(listener.Accept(), "accept");
    std::unique_ptr<gevent::SslSocket> tls;
    if (!plain) {
      tls = Check(gevent::SslSocket::Server(std::move(accepted), server_context),
                  "SslSocket::Server");
      Check(tls->Handshake(absl::Seconds(10)), "server handshake");
    }
    gevent::SocketStream tcp(accepted);
    gevent::Stream& stream = plain ? static_cast<gevent::Stream&>(tcp) : *tls;
    std::vector<char> buffer(256 * 1024);
    absl::Time first;
    for (;;) {
      const std::size_t n = Check(stream.RecvInto(absl::MakeSpan(buffer)), "recv");
      if (n == 0) break;
      if (received.bytes == 0) first = absl::Now();
      received.bytes += n;
    }
    received.elapsed = absl::Now() - first;
    Check(stream.ShutdownWrite(), "server close_notify");
  });
  std::thread sender([&] {
    const uint16_t port = address.get().port();
    gevent::Socket connected;
    std::unique_ptr<gevent::SslSocket> tls;
    if (plain) {
      connected = Check(gevent::CreateConnection("127.0.0.1", port, absl::Seconds(10)), "connect");
    } else {
      tls = Check(gevent::CreateSslConnection("localhost", port, client_context, absl::Seconds(10)),
                  "CreateSslConnection");
    }
    gevent::SocketStream tcp(connected);
    gevent::Stream& stream = plain ? static_cast<gevent::Stream&>(tcp) : *tls;
    const std::string data(chunk, 'x');
    const absl::Time end = absl::Now() + absl::Seconds(seconds);
    while (absl::Now() < end) {
      for (int i = 0; i < 64; ++i) Check(stream.SendAll(data), "send");
    }
    Check(stream.ShutdownWrite(), "close_notify");
    // Read to the server's close_notify: closing with the server's session tickets unread
    // would reset the connection before the receiver has read everything.
    char rest[4096];
    while (Check(stream.RecvInto(absl::MakeSpan(rest)), "recv after close_notify") > 0) {
    }
  });
  sender.join();
  receiver.join();
  std::printf("bytes=%llu seconds=%.3f gb_per_second=%.3f\n",
              static_cast<unsigned long long>(received.bytes),
              absl::ToDoubleSeconds(received.elapsed),
              static_cast<double>(received.bytes) / absl::ToDoubleSeconds(received.elapsed) / 1e9);
  return 0;
}
