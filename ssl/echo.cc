#include "ssl/echo.h"

#include <utility>

namespace gevent {

EchoHandlerFactory MakeSslEchoHandlerFactory(SslServerOptions tls,
                                             std::shared_ptr<SslServerStats> ssl_stats) {
  return [tls = std::move(tls), ssl_stats = std::move(ssl_stats)](
             std::shared_ptr<EchoStats> stats, const EchoOptions& options) {
    return MakeSslHandler(
        [stats = std::move(stats), options](SslSocket& connection, const SocketAddress&) {
          (void)EchoConnection(connection, stats.get(), options);
        },
        tls, ssl_stats);
  };
}

}  // namespace gevent
