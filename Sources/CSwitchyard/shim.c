#define _GNU_SOURCE
#include <fcntl.h>
#include <errno.h>
#include <unistd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/ioctl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include "include/switchyard_uring.h"

int swy_spawn_close_from(void *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, from);
}

int swy_pipe2_nonblocking(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }

int swy_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

int swy_get_pipe_size(int fd) { return fcntl(fd, F_GETPIPE_SZ); }

ssize_t swy_splice(int fd_in, int fd_out, size_t len, int more) {
    unsigned int flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0);
    return splice(fd_in, NULL, fd_out, NULL, len, flags);
}

int swy_accept_nonblocking(int listen_fd) {
    return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int swy_set_thread_name(const char *name) {
    char cut[16];
    strncpy(cut, name, sizeof cut - 1);
    cut[sizeof cut - 1] = '\0';
    return pthread_setname_np(pthread_self(), cut);
}

int swy_errno(void) { return errno; }

const unsigned int swy_POLLRDHUP = POLLRDHUP;

int swy_window_size(int fd, unsigned short *rows, unsigned short *columns) {
    struct winsize size;
    if (ioctl(fd, TIOCGWINSZ, &size) != 0) return -1;
    *rows = size.ws_row;
    *columns = size.ws_col;
    return 0;
}

// From the kernel's include/uapi/linux/io_uring.h (6.8+): liburing 2.3 predates them.
enum { SWY_IORING_REGISTER_PBUF_STATUS = 26 };
struct swy_io_uring_buf_status {
    __u32 buf_group;
    __u32 head;
    __u32 resv[8];
};

int swy_buf_ring_head(int ring_fd, unsigned int group, unsigned short *head) {
    struct swy_io_uring_buf_status status;
    memset(&status, 0, sizeof status);
    status.buf_group = group;
    long result = syscall(__NR_io_uring_register, ring_fd, SWY_IORING_REGISTER_PBUF_STATUS, &status, 1);
    if (result < 0) return -errno;
    *head = (unsigned short)status.head;
    return 0;
}

void swy_buf_ring_set_tail(struct io_uring_buf_ring *ring, unsigned short tail) {
    io_uring_smp_store_release(&ring->tail, tail);
}

unsigned short swy_buf_ring_tail(const struct io_uring_buf_ring *ring) { return ring->tail; }
