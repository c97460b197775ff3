// The program of the README's "The model in one program": an echo server and three clients on one
// thread, each written as if it blocked, and a per-call timeout. Kept identical to the README's
// copy (examples_test checks its output).
#include <cstdio>
#include <string>
#include <vector>

#include "hub/spawn.h"
#include "socket/resolve.h"
#include "socket/server.h"
#include "socket/socket.h"

int main() {
  // Each connection gets its own greenlet running this handler: plain blocking-style code.
  gevent::StreamServer server(gevent::SocketAddress::Loopback(0),
                              [](gevent::Socket conn, const gevent::SocketAddress&) {
    char buf[4096];
    for (absl::StatusOr<size_t> n; (n = conn.RecvInto(absl::MakeSpan(buf))).ok() && *n > 0;) {
      if (!conn.SendAll({buf, *n}).ok()) return;
    }
  });
  if (absl::Status s = server.Start(); !s.ok()) return std::puts(s.ToString().c_str()), 1;

  std::vector<gevent::GreenletRef> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(gevent::Spawn([&server, i] {
      // The 1 s bounds the connect and becomes the socket's default timeout for every call.
      absl::StatusOr<gevent::Socket> s =
          gevent::CreateConnection("localhost", server.port(), absl::Seconds(1));
      if (!s.ok()) return (void)std::puts(s.status().ToString().c_str());
      char buf[64];
      absl::StatusOr<size_t> n;
      if (s->SendAll("hello " + std::to_string(i)).ok() &&
          (n = s->RecvInto(absl::MakeSpan(buf))).ok())
        std::printf("client %d got '%.*s'\n", i, static_cast<int>(*n), buf);
      // Nothing more comes: a per-call IoTimeout ends the wait with DeadlineExceeded.
      n = s->RecvInto(absl::MakeSpan(buf), absl::Milliseconds(50));
      std::printf("client %d: %s\n", i, n.status().ToString().c_str());
    }));
  }
  gevent::JoinAll(clients);  // main parks; the hub runs the clients and the handlers
  server.Stop();             // close the listener, let the handlers finish
  gevent::Wait();            // run the hub until nothing is left
}
