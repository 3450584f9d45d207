// The C surface Switchyard imports: glibc headers first (liburing needs them, see
// shared/IO_URING.md), then liburing, then the few names Swift cannot import directly.
// No logic lives here.
#ifndef SWITCHYARD_URING_H
#define SWITCHYARD_URING_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <time.h>
#include <liburing.h>

// The submission ring's flags as the kernel last wrote them (IO_URING_READ_ONCE: a load Swift
// cannot hoist out of a spin loop).
static inline unsigned int swy_sq_flags(const struct io_uring *ring) { return IO_URING_READ_ONCE(*ring->sq.kflags); }

// IOSQE_* are enum-derived macros Swift does not import.
static const unsigned int swy_IOSQE_BUFFER_SELECT = IOSQE_BUFFER_SELECT;

// IP_BIND_ADDRESS_NO_PORT (Linux 4.2, ip(7)): bind(2) fixes the source address only and the
// port is chosen at connect(2), per destination. glibc 2.22+ has it; define it where it does not.
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
static const int swy_IP_BIND_ADDRESS_NO_PORT = IP_BIND_ADDRESS_NO_PORT;

// Names hidden behind _GNU_SOURCE; defined in shim.c, which sets it.
extern const unsigned int swy_POLLRDHUP;
int swy_pipe2_nonblocking(int fds[2]);
int swy_set_pipe_size(int fd, int size);
int swy_get_pipe_size(int fd);
/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC and no peer address; -1 with errno set on failure.
int swy_accept_nonblocking(int listen_fd);
/// pthread_setname_np(3) for the calling thread; names longer than 15 bytes are cut.
int swy_set_thread_name(const char *name);
/// splice(2) with SPLICE_F_MOVE | SPLICE_F_NONBLOCK; returns bytes moved or -1 with errno set.
ssize_t swy_splice(int fd_in, int fd_out, size_t len, int more);

/// The terminal size of `fd` (ioctl TIOCGWINSZ, which Swift cannot call: ioctl is variadic);
/// 0, or -1 with errno set.
int swy_window_size(int fd, unsigned short *rows, unsigned short *columns);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+, _GNU_SOURCE only): the child closes
/// every descriptor from `from` on. `actions` is a posix_spawn_file_actions_t.
int swy_spawn_close_from(void *actions, int from);

/// The kernel's head of provided-buffer group `group` (IORING_REGISTER_PBUF_STATUS, kernel 6.8+;
/// liburing 2.3 names neither the opcode nor its argument, so shim.c spells the UAPI values).
/// 0 with `*head` set, or -errno (EINVAL on kernels without it).
int swy_buf_ring_head(int ring_fd, unsigned int group, unsigned short *head);
/// Stores the tail of a provided-buffer ring with release ordering (io_uring_buf_ring_advance
/// only adds to it).
void swy_buf_ring_set_tail(struct io_uring_buf_ring *ring, unsigned short tail);
/// The tail of a provided-buffer ring as userspace last published it.
unsigned short swy_buf_ring_tail(const struct io_uring_buf_ring *ring);

/// The errno of the calling thread (Swift's `errno` is fine too; this keeps the funnel in one place).
int swy_errno(void);

#endif
