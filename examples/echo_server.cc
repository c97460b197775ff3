// A TCP echo server (gevent's examples/echoserver.py).
//
//   bazel run //examples:echo_server -- 9000      # 0: any free port
//
// Every connection gets its own greenlet, which reads and writes as if it blocked: when the kernel
// has nothing to read, the greenlet parks and the hub runs the others.
#include <cstdio>

#include "examples/args.h"
#include "socket/server.h"

// Echo serves one connection, in its own greenlet: read what came, write it back, until the
// client closes (or the connection fails).
void Echo(gevent::Socket connection, const gevent::SocketAddress& peer) {
  char buf[4096];
  for (;;) {
    absl::StatusOr<size_t> n = connection.RecvInto(absl::MakeSpan(buf));
    if (!n.ok() || *n == 0) return;  // Error or end of stream.
    if (!connection.SendAll({buf, *n}).ok()) return;
  }
}

int main(int argc, char** argv) {
  if (argc != 2) examples::Usage(argv[0], "expected one argument", "PORT");
  std::optional<uint16_t> port = examples::ParsePort(argv[1]);
  if (!port.has_value()) examples::Usage(argv[0], "bad port: " + std::string(argv[1]), "PORT");

  gevent::StreamServer server(gevent::SocketAddress::Loopback(*port), Echo);
  if (absl::Status started = server.Start(); !started.ok()) {
    std::fprintf(stderr, "echo_server: %s\n", started.ToString().c_str());
    return 1;
  }
  examples::Announce(server.address().ToString());
  return server.ServeForever().ok() ? 0 : 1;
}
