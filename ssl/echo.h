// gevent::MakeSslEchoHandlerFactory — the echo service (socket/echo.h) over TLS, for EchoServer
// and //socket:echo_server --tls_cert/--tls_key.
//
//   gevent::SslServerOptions tls;
//   tls.context = ...;                                     // a server SslContext
//   gevent::EchoServerOptions options;
//   options.make_handler = gevent::MakeSslEchoHandlerFactory(tls, ssl_stats);
//   gevent::EchoServer server(options);
//
// Each connection: the handshake under tls.handshake_timeout (ssl/server.h), then
// EchoConnection on the SslSocket until the client's close_notify (answered with ours), an idle
// timeout or an error, counted in the EchoStats as for plain TCP. Thread-safe as MakeSslHandler.
#ifndef GEVENT_SSL_ECHO_H_
#define GEVENT_SSL_ECHO_H_

#include <memory>

#include "socket/echo.h"
#include "ssl/server.h"

namespace gevent {

// MakeSslEchoHandlerFactory: see the file comment. `ssl_stats` may be null. Throws as
// MakeSslHandler does for bad options (when the factory is called).
EchoHandlerFactory MakeSslEchoHandlerFactory(SslServerOptions tls,
                                             std::shared_ptr<SslServerStats> ssl_stats = nullptr);

}  // namespace gevent

#endif  // GEVENT_SSL_ECHO_H_
