// gevent::monkey — make the blocking libc calls of ordinary libraries cooperative
// (gevent.monkey.patch_all).
//
//   int main() {
//     gevent::monkey::PatchAll();
//     gevent::Spawn([] { redisCommand(ctx, "GET k"); });   // parks on the hub, not the thread
//     gevent::Wait();
//   }
//
// Linking //monkey defines the libc entry points below in the program itself (they are found
// before libc's; the real ones are looked up once with dlsym(RTLD_NEXT), under ASan/TSan that is
// the sanitizer's interceptor, which then calls libc). Until PatchAll() every hook is exactly the
// real call. After it, a hooked call is cooperative when it is made by a greenlet of a thread that
// has a hub — the thread's main greenlet included (its wait switches to the hub, as in gevent) —
// and not from the hub greenlet itself (a loop callback: Hub::InHub()). Everywhere else (threads
// without a hub, such as the hub's thread-pool workers; loop callbacks) it is the real call, with
// blocking semantics kept (see "descriptors" below).
//
// What is cooperative (the calling greenlet parks until the fd is ready or the time has passed;
// every other greenlet runs meanwhile):
//   read, write, readv, writev, recv, recvfrom, recvmsg, send, sendto, sendmsg, connect, accept,
//   accept4 — on sockets and pipes/FIFOs; read on a tty (it waits for input, then reads;
//   writes to a tty are the real call);
//   the fortified __read_chk, __recv_chk, __recvfrom_chk, __poll_chk;
//   poll, __poll, ppoll and select/pselect (without a signal mask), through gevent::Poll
//   (socket/select.h); sleep, usleep, nanosleep (gevent::Sleep; `rem` is set to zero: a
//   cooperative sleep is not interrupted by signals);
//   getaddrinfo, getnameinfo, gethostbyname, gethostbyname_r, gethostbyname2_r,
//   gethostbyaddr_r — run on the hub's thread pool (HubThreadPool()) while the greenlet parks
//   (the resolver's own internal poll/send are not reachable by interposition, so it must run
//   elsewhere). gethostbyname's result lives in a per-thread buffer until the next call on that
//   thread. An exception thrown into a greenlet waiting for a lookup (a Timeout, a kill) is
//   delivered once the lookup ends (the worker writes into the caller's buffers).
//
// What follows the user's view, not the kernel's:
//   Descriptors. The first cooperative use of a socket or pipe sets O_NONBLOCK on it so that the
//   real call returns EAGAIN and the hook waits. fcntl/fcntl64(F_GETFL) report the user's view
//   (without that flag); F_SETFL with O_NONBLOCK, ioctl(FIONBIO), SOCK_NONBLOCK at socket(),
//   socketpair(), accept4() and O_NONBLOCK at pipe2() are remembered: such an fd keeps returning
//   EAGAIN as before. A call made on such an fd outside a cooperative context (another thread)
//   still blocks for the caller (a real poll, then the retry). A blocking write to a stream
//   completes (it returns short only on a timeout, an error or EINTR after progress), as the
//   kernel's blocking write does. An fd that waited once stays registered with that thread's hub
//   (so a later wait costs no epoll_ctl) until close/dup2/dup3 on that thread takes it out; close
//   a cooperative fd on the thread whose greenlets used it.
//   Timeouts. setsockopt(SO_RCVTIMEO / SO_SNDTIMEO) is honoured: the call fails with EAGAIN once
//   it passed (connect: EINPROGRESS, as Linux does).
//   close() wakes the greenlets waiting on that fd (gevent::CancelWait; their calls fail with
//   EBADF) and the Polls on it; dup2/dup3 onto a waited-on fd likewise. dup/dup2/dup3 and
//   F_DUPFD copy the fd's state.
//   Return values and errno are the real call's in every case: EINTR, EAGAIN on fds the user made
//   non-blocking, short reads, EBADF for a bad fd (from the real call).
//   fork(): the child re-initialises its hub (gevent.reinit): a fresh libev backend
//   (Loop::Fork), a new epoll set for the sockets' edge poller, a new thread pool on next use.
//
// What is NOT cooperative (it stays the real, blocking call):
//   stdio and iostreams on files or pipes (glibc calls its internal __read/__write, which no
//   interposition reaches); regular files and other fds that are not sockets, pipes or ttys
//   (eventfd, epoll, timerfd, /dev/null...: pass-through); calls glibc makes internally (inside
//   getaddrinfo, system(), popen...); system calls made with syscall(2) or inline assembly
//   (including the stack's own, base/syscall.h); io_uring; epoll_wait; calls with MSG_DONTWAIT;
//   ppoll/pselect with a signal mask; statically linked programs (no RTLD_NEXT: link libc
//   dynamically). An fd closed behind the hooks' back (glibc's internal close, syscall(SYS_close))
//   may leave its state for the next fd of that number: open sockets and pipes through the
//   hooked calls. A program exec'd with an inherited socket sees O_NONBLOCK on it (as with gevent).
//
// Exceptions: a gevent::Timeout or GreenletExit thrown into a parked greenlet propagates out of
// the hooked call, through the C library frames that called it (they do not run cleanup); a
// second greenlet waiting on the same side of one fd throws ConcurrentObjectUseError (gevent's).
//
// Linking: //monkey is alwayslink (an archive member nothing references would be dropped); its
// linkopts export the hooks dynamically so shared libraries bind to them.
#ifndef GEVENT_MONKEY_MONKEY_H_
#define GEVENT_MONKEY_MONKEY_H_

namespace gevent {
namespace monkey {

// PatchAll turns the hooks on for every thread (gevent.monkey.patch_all). Idempotent. Also
// registers the fork handler (see fork() above).
void PatchAll();

// IsPatched: PatchAll() was called.
bool IsPatched();

}  // namespace monkey

// Reinit: in a child after fork(), make the calling thread's hub usable (gevent.reinit): the
// loop's backend, the edge poller's epoll set, the thread pool. The hooks call it through a
// pthread_atfork child handler; call it yourself after a raw clone or vfork-like path. No-op
// without a hub.
void Reinit();

}  // namespace gevent

#endif  // GEVENT_MONKEY_MONKEY_H_
