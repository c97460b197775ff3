// A UDP server (gevent's examples/udp_server.py): answers every datagram with "echo: " and the
// datagram.
//
//   bazel run //examples:udp_server -- 9000
//
// The handler runs in the server's receive greenlet, one datagram at a time; a reply that would
// block parks only that greenlet.
#include <cstdio>
#include <string>

#include "examples/args.h"
#include "socket/server.h"

int main(int argc, char** argv) {
  if (argc != 2) examples::Usage(argv[0], "expected one argument", "PORT");
  std::optional<uint16_t> port = examples::ParsePort(argv[1]);
  if (!port.has_value()) examples::Usage(argv[0], "bad port: " + std::string(argv[1]), "PORT");

  gevent::DatagramServer server(
      gevent::SocketAddress::Loopback(*port),
      [](absl::string_view data, const gevent::SocketAddress& from, gevent::Socket& socket) {
        const std::string reply = "echo: " + std::string(data);
        if (absl::StatusOr<size_t> sent = socket.SendTo(reply, from); !sent.ok()) {
          std::fprintf(stderr, "udp_server: %s\n", sent.status().ToString().c_str());
        }
      });
  if (absl::Status started = server.Start(); !started.ok()) {
    std::fprintf(stderr, "udp_server: %s\n", started.ToString().c_str());
    return 1;
  }
  examples::Announce(server.address().ToString());
  return server.ServeForever().ok() ? 0 : 1;
}
