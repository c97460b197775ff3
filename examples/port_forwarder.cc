// A TCP port forwarder (gevent's examples/portforwarder.py): every connection to the listening
// port is connected on to TARGET, and bytes are pumped both ways until both sides are done.
//
//   bazel run //examples:port_forwarder -- 8080 example.com:80
//
// Two greenlets per connection, one per direction, each written as a plain blocking loop. One
// socket may have one reader and one writer at a time: each pump reads one socket and writes the
// other, so they never wait on the same side of one socket.
#include <sys/socket.h>

#include <cstdio>
#include <string>

#include "examples/args.h"
#include "hub/spawn.h"
#include "socket/resolve.h"
#include "socket/server.h"

namespace {

// Pump copies `from` into `to` until `from` ends, then passes the end of stream on. A failure
// (a reset, say) shuts both sockets down, which also ends the other direction's pump.
void Pump(gevent::Socket& from, gevent::Socket& to) {
  char buf[8192];
  for (;;) {
    absl::StatusOr<size_t> n = from.RecvInto(absl::MakeSpan(buf));
    if (n.ok() && *n == 0) break;
    if (!n.ok() || !to.SendAll({buf, *n}).ok()) {
      (void)from.Shutdown(SHUT_RDWR);
      (void)to.Shutdown(SHUT_RDWR);
      return;
    }
  }
  (void)to.Shutdown(SHUT_WR);
}

}  // namespace

int main(int argc, char** argv) {
  constexpr char kUsage[] = "LISTEN_PORT TARGET_HOST:TARGET_PORT";
  if (argc != 3) examples::Usage(argv[0], "expected two arguments", kUsage);
  std::optional<uint16_t> port = examples::ParsePort(argv[1]);
  if (!port.has_value()) examples::Usage(argv[0], "bad port: " + std::string(argv[1]), kUsage);
  std::optional<std::pair<std::string, uint16_t>> target = examples::ParseHostPort(argv[2]);
  if (!target.has_value()) {
    examples::Usage(argv[0], "bad target (want HOST:PORT): " + std::string(argv[2]), kUsage);
  }

  gevent::StreamServer server(
      gevent::SocketAddress::Loopback(*port),
      [&target](gevent::Socket client, const gevent::SocketAddress& peer) {
        absl::StatusOr<gevent::Socket> upstream =
            gevent::CreateConnection(target->first, target->second, absl::Seconds(5));
        if (!upstream.ok()) {
          std::fprintf(stderr, "port_forwarder: %s: %s\n", peer.ToString().c_str(),
                       upstream.status().ToString().c_str());
          return;  // Closing `client` tells the peer.
        }
        upstream->SetTimeout(std::nullopt);  // The 5 s were for connecting; idle is fine.
        gevent::GreenletRef back = gevent::Spawn([&] { Pump(*upstream, client); });
        Pump(client, *upstream);
        back->Join();  // Both directions done: the sockets close as the handler returns.
      });
  if (absl::Status started = server.Start(); !started.ok()) {
    std::fprintf(stderr, "port_forwarder: %s\n", started.ToString().c_str());
    return 1;
  }
  examples::Announce(server.address().ToString());
  return server.ServeForever().ok() ? 0 : 1;
}
