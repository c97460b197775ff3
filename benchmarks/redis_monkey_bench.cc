// One client side of benchmarks/redis_monkey.py: `clients` Redis connections on one thread, each
// alternating SET key_i <64 bytes> / GET key_i, request -> reply -> next request, until it made
// `requests` of them. Two ways:
//   --mode=greenlet  hiredis's blocking API (redisConnectUnix, redisCommand) in one greenlet per
//                    connection, made cooperative by gevent::monkey::PatchAll();
//   --mode=async     hiredis's asynchronous API on libev (hiredis/adapters/libev.h): callbacks,
//                    one redisAsyncContext per connection on the default ev loop.
// Prints one line: mode, requests, wall seconds, requests/s, client CPU (getrusage, user+sys) per
// request in microseconds. Exits 1 on any error.
#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/resource.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "hub/spawn.h"
#include "monkey/monkey.h"

namespace {

struct Options {
  std::string mode;
  std::string socket;
  int clients = 100;
  int requests = 2000;  // per client
};

const std::string& Value() {
  static const std::string value(64, 'v');
  return value;
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "redis_monkey_bench: %s\n", what.c_str());
  std::exit(1);
}

// ----- greenlets + blocking hiredis -----

void GreenletClient(const Options& o, int index) {
  redisContext* c = redisConnectUnix(o.socket.c_str());
  if (c == nullptr || c->err != 0) Fail(std::string("connect: ") + (c ? c->errstr : "null"));
  const std::string key = "key_" + std::to_string(index);
  for (int i = 0; i < o.requests; ++i) {
    redisReply* r =
        (i % 2 == 0)
            ? static_cast<redisReply*>(redisCommand(c, "SET %s %b", key.c_str(), Value().data(),
                                                    Value().size()))
            : static_cast<redisReply*>(redisCommand(c, "GET %s", key.c_str()));
    if (r == nullptr || r->type == REDIS_REPLY_ERROR) Fail(std::string("command: ") + c->errstr);
    freeReplyObject(r);
  }
  redisFree(c);
}

void RunGreenlets(const Options& o) {
  gevent::monkey::PatchAll();
  std::vector<gevent::GreenletRef> greenlets;
  gevent::SpawnOptions stack;
  stack.stack.size = 256 * 1024;
  for (int i = 0; i < o.clients; ++i) greenlets.push_back(gevent::Spawn(stack, GreenletClient, o, i));
  gevent::JoinAll(greenlets);
}

// ----- hiredis async on libev -----

struct AsyncClient {
  const Options* options;
  std::string key;
  int sent = 0;
};

void SendNext(redisAsyncContext* ac, AsyncClient* client);

void OnReply(redisAsyncContext* ac, void* reply, void* data) {
  auto* client = static_cast<AsyncClient*>(data);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr || r->type == REDIS_REPLY_ERROR) Fail(std::string("async command: ") + ac->errstr);
  if (client->sent == client->options->requests) {
    redisAsyncDisconnect(ac);
    return;
  }
  SendNext(ac, client);
}

void SendNext(redisAsyncContext* ac, AsyncClient* client) {
  const int i = client->sent++;
  const int rc = (i % 2 == 0) ? redisAsyncCommand(ac, OnReply, client, "SET %s %b",
                                                  client->key.c_str(), Value().data(),
                                                  Value().size())
                              : redisAsyncCommand(ac, OnReply, client, "GET %s",
                                                  client->key.c_str());
  if (rc != REDIS_OK) Fail("redisAsyncCommand failed");
}

void RunAsync(const Options& o) {
  struct ev_loop* loop = EV_DEFAULT;
  std::vector<AsyncClient> clients(o.clients);
  for (int i = 0; i < o.clients; ++i) {
    redisAsyncContext* ac = redisAsyncConnectUnix(o.socket.c_str());
    if (ac == nullptr || ac->err != 0) Fail(std::string("async connect: ") + (ac ? ac->errstr : "null"));
    clients[i] = AsyncClient{&o, "key_" + std::to_string(i), 0};
    redisLibevAttach(loop, ac);
    SendNext(ac, &clients[i]);
  }
  ev_run(loop, 0);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      const size_t n = std::strlen(flag);
      return a.compare(0, n, flag) == 0 ? argv[i] + n : nullptr;
    };
    if (const char* v = value("--mode=")) o.mode = v;
    else if (const char* v = value("--socket=")) o.socket = v;
    else if (const char* v = value("--clients=")) o.clients = std::atoi(v);
    else if (const char* v = value("--requests=")) o.requests = std::atoi(v);
    else Fail("unknown argument " + a + "; usage: --mode=greenlet|async --socket=PATH "
              "[--clients=100] [--requests=2000 per client]");
  }
  if ((o.mode != "greenlet" && o.mode != "async") || o.socket.empty() || o.clients <= 0 ||
      o.requests <= 0) {
    Fail("need --mode=greenlet|async and --socket=PATH");
  }
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  if (o.mode == "greenlet") RunGreenlets(o); else RunAsync(o);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  const double total = static_cast<double>(o.clients) * o.requests;
  std::printf("mode=%s clients=%d requests=%.0f wall_s=%.3f rps=%.0f cpu_us_per_req=%.3f\n",
              o.mode.c_str(), o.clients, total, wall, total / wall, cpu / total * 1e6);
  return 0;
}
