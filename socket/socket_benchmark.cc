// Socket benchmarks: a 64-byte echo over a socketpair, per round trip, three ways.
//
//   BM_SocketpairEcho          two greenlets on one hub, gevent::Socket Send / RecvInto
//   BM_RawEpollSocketpairEcho  the same exchange in a plain level-triggered epoll loop, one
//                              thread, both ends in the loop: the floor for a single-threaded
//                              event loop (each side reads only when epoll says it can)
//   BM_RawLibevSocketpairEcho  the same loop on bare libev (ev_io callbacks, ev_run(EVRUN_ONCE)),
//                              no greenlets: what libev itself adds to the epoll figure
//   BM_ThreadsSocketpairEcho   blocking read/write in two OS threads (thread-per-connection)
//
// Many connections, per message (arguments: connections, and 0 for Unix socketpairs or 1 for
// loopback TCP). Each round the driver writes a 64-byte message into every connection with raw
// syscalls, the echo side answers them all, and the driver reads every echo back. The kernel work
// between two wake-ups of one connection evicts its state from the cache, as in a busy server, so
// these show what cold wake-ups cost:
//   BM_EchoHandlersMany        one greenlet per connection running the echo server's own
//                              handler (EchoConnection, unguarded stacks as echo_server uses)
//   BM_RawEpollEchoMany        the same echo side in a plain level-triggered epoll loop
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "benchmark/benchmark.h"
#include "hub/hub.h"
#include "hub/spawn.h"
#include "socket/echo.h"
#include "socket/socket.h"

namespace gevent {
namespace {

constexpr size_t kMessage = 64;
// Every reader reads into a buffer of this size, as servers do (they do not know the message
// size); the raw loop reads once per readiness, as before.
constexpr size_t kBuffer = 4096;

[[noreturn]] void Die(const char* what) {
  std::perror(what);
  std::abort();
}

// Reads until `n` bytes came (a socketpair delivers the 64 bytes at once, but be exact).
bool RecvAll(Socket& s, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    absl::StatusOr<size_t> r = s.RecvInto(buf, kBuffer);
    if (!r.ok() || *r == 0) return false;
    got += *r;
  }
  return true;
}

void BM_SocketpairEcho(benchmark::State& state) {
  absl::StatusOr<std::pair<Socket, Socket>> pair = Socket::Pair();
  if (!pair.ok()) Die("socketpair");
  Socket& client = pair->first;
  Socket& server = pair->second;
  GreenletRef echo = Spawn([&server] {
    char buf[kBuffer];
    for (;;) {
      absl::StatusOr<size_t> n = server.RecvInto(buf, sizeof buf);
      if (!n.ok() || *n == 0) return;
      if (!server.SendAll(absl::string_view(buf, *n)).ok()) return;
    }
  });
  char out[kMessage];
  std::memset(out, 'x', sizeof out);
  char in[kBuffer];
  for (auto _ : state) {
    if (!client.SendAll(absl::string_view(out, sizeof out)).ok()) Die("send");
    if (!RecvAll(client, in, kMessage)) Die("recv");
    benchmark::DoNotOptimize(in);
  }
  (void)client.Shutdown(SHUT_WR);
  echo->Join();
  echo.reset();
  state.SetItemsProcessed(state.iterations());
  // Sockets first (their watchers live on the hub's loop), then the hub, while the thread's
  // stack pool still exists (at process exit it could go first).
  (void)client.Close();
  (void)server.Close();
  DestroyHub();
}
BENCHMARK(BM_SocketpairEcho)->UseRealTime();

// WatchReadable adds `fd` to the epoll set `ep`, level-triggered, for reading.
void WatchReadable(int ep, int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) Die("epoll_ctl");
}

void BM_RawEpollSocketpairEcho(benchmark::State& state) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) Die("socketpair");
  const int client = fds[0];
  const int server = fds[1];
  const int ep = epoll_create1(0);
  if (ep < 0) Die("epoll_create1");
  for (int fd : {client, server}) WatchReadable(ep, fd);
  char out[kMessage];
  std::memset(out, 'x', sizeof out);
  char buf[kBuffer];
  epoll_event events[8];
  for (auto _ : state) {
    if (write(client, out, sizeof out) != static_cast<ssize_t>(sizeof out)) Die("write");
    // Run the loop until the echo is back at the client.
    size_t at_client = 0;
    while (at_client < kMessage) {
      int n = epoll_wait(ep, events, 8, -1);
      if (n < 0 && errno != EINTR) Die("epoll_wait");
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) Die("read");
        if (fd == server) {
          if (write(server, buf, static_cast<size_t>(r)) != r) Die("write");
        } else {
          at_client += static_cast<size_t>(r);
        }
      }
    }
    benchmark::DoNotOptimize(buf);
  }
  close(ep);
  close(client);
  close(server);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawEpollSocketpairEcho)->UseRealTime();

struct LibevEcho {
  ev_io client_io;
  ev_io server_io;
  int client = -1;
  int server = -1;
  size_t at_client = 0;
  char buf[kBuffer];
};

void BM_RawLibevSocketpairEcho(benchmark::State& state) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) Die("socketpair");
  struct ev_loop* loop = ev_loop_new(EVBACKEND_EPOLL);
  if (loop == nullptr) Die("ev_loop_new");
  LibevEcho e;
  e.client = fds[0];
  e.server = fds[1];
  ev_io_init(
      &e.server_io,
      [](struct ev_loop*, ev_io* w, int) {
        auto* self = static_cast<LibevEcho*>(w->data);
        ssize_t r = read(self->server, self->buf, sizeof self->buf);
        if (r <= 0) Die("read");
        if (write(self->server, self->buf, static_cast<size_t>(r)) != r) Die("write");
      },
      e.server, EV_READ);
  ev_io_init(
      &e.client_io,
      [](struct ev_loop*, ev_io* w, int) {
        auto* self = static_cast<LibevEcho*>(w->data);
        ssize_t r = read(self->client, self->buf, sizeof self->buf);
        if (r <= 0) Die("read");
        self->at_client += static_cast<size_t>(r);
      },
      e.client, EV_READ);
  e.server_io.data = &e;
  e.client_io.data = &e;
  ev_io_start(loop, &e.server_io);
  ev_io_start(loop, &e.client_io);
  char out[kMessage];
  std::memset(out, 'x', sizeof out);
  for (auto _ : state) {
    if (write(e.client, out, sizeof out) != static_cast<ssize_t>(sizeof out)) Die("write");
    e.at_client = 0;
    while (e.at_client < kMessage) ev_run(loop, EVRUN_ONCE);
  }
  ev_io_stop(loop, &e.server_io);
  ev_io_stop(loop, &e.client_io);
  ev_loop_destroy(loop);
  close(e.client);
  close(e.server);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawLibevSocketpairEcho)->UseRealTime();

void BM_ThreadsSocketpairEcho(benchmark::State& state) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) Die("socketpair");
  const int client = fds[0];
  const int server = fds[1];
  std::thread echo([server] {
    char buf[kBuffer];
    for (;;) {
      ssize_t r = read(server, buf, sizeof buf);
      if (r <= 0) return;
      if (write(server, buf, static_cast<size_t>(r)) != r) return;
    }
  });
  char out[kMessage];
  std::memset(out, 'x', sizeof out);
  char in[kBuffer];
  for (auto _ : state) {
    if (write(client, out, sizeof out) != static_cast<ssize_t>(sizeof out)) Die("write");
    size_t got = 0;
    while (got < kMessage) {
      ssize_t r = read(client, in, sizeof in);
      if (r <= 0) Die("read");
      got += static_cast<size_t>(r);
    }
    benchmark::DoNotOptimize(in);
  }
  shutdown(client, SHUT_WR);
  echo.join();
  close(client);
  close(server);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ThreadsSocketpairEcho)->UseRealTime();

// ConnectedPair: two connected non-blocking fds, a Unix socketpair or (tcp) a loopback TCP
// connection with Nagle off, as a server and its client have.
std::pair<int, int> ConnectedPair(bool tcp) {
  int fds[2];
  if (!tcp) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) Die("socketpair");
    return {fds[0], fds[1]};
  }
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("listen");
  }
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  if (client < 0 || connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Die("connect");
  }
  const int server = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
  if (server < 0) Die("accept4");
  close(listener);
  const int one = 1;
  for (int fd : {client, server}) {
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) Die("TCP_NODELAY");
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) Die("O_NONBLOCK");
  }
  return {client, server};
}

// The driver's half of a many-connection round: write one message into every connection.
void WriteToAll(const std::vector<int>& fds, const char* message) {
  for (int fd : fds) {
    if (write(fd, message, kMessage) != static_cast<ssize_t>(kMessage)) Die("write");
  }
}

void BM_EchoHandlersMany(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<Socket> drivers;
  std::vector<Socket> echo_ends;
  std::vector<int> driver_fds;
  for (size_t i = 0; i < n; ++i) {
    const auto [driver_fd, echo_fd] = ConnectedPair(state.range(1) != 0);
    absl::StatusOr<Socket> driver = Socket::Adopt(driver_fd);
    absl::StatusOr<Socket> echo_end = Socket::Adopt(echo_fd);
    if (!driver.ok() || !echo_end.ok()) Die("Socket::Adopt");
    driver_fds.push_back(driver_fd);
    drivers.push_back(std::move(*driver));
    echo_ends.push_back(std::move(*echo_end));
  }
  SpawnOptions spawn;
  spawn.stack = EchoServerOptions().stack;
  std::vector<GreenletRef> handlers;
  for (Socket& end : echo_ends) {
    handlers.push_back(Spawn(spawn, [&end] { (void)EchoConnection(end, nullptr); }));
  }
  char out[kMessage];
  std::memset(out, 'x', sizeof out);
  char in[kMessage];
  for (auto _ : state) {
    WriteToAll(driver_fds, out);
    for (Socket& d : drivers) {
      // Exactly one message's size: a full read leaves no "drained" hint, so a reply that is
      // already back costs no wait.
      absl::StatusOr<size_t> r = d.RecvInto(in, sizeof in);
      if (!r.ok() || *r != kMessage) Die("recv");
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
  for (Socket& d : drivers) (void)d.Shutdown(SHUT_WR);
  for (GreenletRef& h : handlers) h->Join();
  handlers.clear();
  drivers.clear();
  echo_ends.clear();
  DestroyHub();
}
BENCHMARK(BM_EchoHandlersMany)
    ->ArgNames({"conns", "tcp"})
    ->Args({1000, 0})
    ->Args({1000, 1})
    ->UseRealTime();

void BM_RawEpollEchoMany(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<int> driver_fds;
  std::vector<int> echo_fds;
  const int ep = epoll_create1(0);
  if (ep < 0) Die("epoll_create1");
  for (size_t i = 0; i < n; ++i) {
    const auto [driver_fd, echo_fd] = ConnectedPair(state.range(1) != 0);
    driver_fds.push_back(driver_fd);
    echo_fds.push_back(echo_fd);
    WatchReadable(ep, echo_fd);
  }
  char out[kMessage];
  std::memset(out, 'x', sizeof out);
  char buf[kEchoSmallBuffer];
  std::vector<epoll_event> events(512);
  for (auto _ : state) {
    WriteToAll(driver_fds, out);
    size_t echoed = 0;
    while (echoed < n) {
      int k = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
      if (k < 0 && errno != EINTR) Die("epoll_wait");
      for (int i = 0; i < k; ++i) {
        const int fd = events[static_cast<size_t>(i)].data.fd;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) Die("read");
        if (write(fd, buf, static_cast<size_t>(r)) != r) Die("write");
        echoed += static_cast<size_t>(r) / kMessage;
      }
    }
    for (int fd : driver_fds) {
      if (read(fd, buf, kMessage) != static_cast<ssize_t>(kMessage)) Die("read");
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
  close(ep);
  for (int fd : driver_fds) close(fd);
  for (int fd : echo_fds) close(fd);
}
BENCHMARK(BM_RawEpollEchoMany)
    ->ArgNames({"conns", "tcp"})
    ->Args({1000, 0})
    ->Args({1000, 1})
    ->UseRealTime();

}  // namespace
}  // namespace gevent
