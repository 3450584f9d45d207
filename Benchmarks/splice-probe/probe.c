/*
 * splice-probe: a one-thread TCP proxy on 127.0.0.1 that relays both directions of
 * every connection through a pipe, in one of two ways:
 *
 *   poll-splice  O_NONBLOCK sockets; splice(2) socket->pipe->socket until EAGAIN,
 *                then one IORING_OP_POLL_ADD on the ring (readability of the source,
 *                or writability of the destination while the pipe holds bytes).
 *                This is what Switchyard does today.
 *
 *   ring-splice  Blocking sockets; per direction one linked chain
 *                  POLL_ADD(src, POLLIN) -IO_LINK-> SPLICE(src->pipe) -IO_HARDLINK-> SPLICE(pipe->dst)
 *                The poll in front keeps idle directions from parking an io-wq thread
 *                inside a blocking splice; the hard link makes the second splice run
 *                even when the first one is short. Bytes still in the pipe after the
 *                chain (short second splice) are drained by a further SPLICE(pipe->dst)
 *                before the next chain is armed.
 *
 * usage: probe [--method poll-splice|ring-splice] [--pipe-size BYTES] LISTEN_PORT BACKEND_PORT
 * SIGTERM/SIGINT print operation counters to stderr and exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <liburing.h>

enum { M_POLL_SPLICE, M_RING_SPLICE };
enum { K_POLL = 0, K_IN = 1, K_OUT = 2, K_ACCEPT = 3 };

struct dir {
	int src, dst;      /* bytes flow src -> pipe -> dst */
	int pr, pw;        /* pipe read / write ends */
	long inpipe;       /* bytes currently in the pipe */
	int pending;       /* ring requests in flight for this direction */
	int eof, done, err;
};

struct conn {
	struct dir d[2];   /* 0: client -> backend, 1: backend -> client */
	int cfd, bfd;
	int closing;
};

static int method = M_POLL_SPLICE;
static int pipe_size = 1 << 20;
static struct io_uring ring;
static struct sockaddr_in backend;
static int listen_fd;
static volatile sig_atomic_t stop;

static struct {
	unsigned long conns, splice_calls, splice_eagain, polls, ring_splices,
		drain_splices, short_out;
} st;

static void die(const char *what, int err)
{
	fprintf(stderr, "probe: %s: %s\n", what, strerror(err));
	exit(1);
}

static inline uint64_t ud(struct conn *c, int di, int kind)
{
	return (uint64_t)(uintptr_t)c | (uint64_t)(di << 2) | (uint64_t)kind;
}

static struct io_uring_sqe *sqe_get(unsigned need)
{
	/* a linked chain must go into the kernel in one submission: make room first */
	if (io_uring_sq_space_left(&ring) < need)
		io_uring_submit(&ring);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	if (!sqe)
		die("no sqe", EBUSY);
	return sqe;
}

static void fail(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	/* wakes every poll and every blocked splice on these sockets */
	shutdown(c->cfd, SHUT_RDWR);
	shutdown(c->bfd, SHUT_RDWR);
}

static void finish_dir(struct conn *c, int di)
{
	struct dir *d = &c->d[di];
	if (!d->done) {
		d->done = 1;
		shutdown(d->dst, SHUT_WR); /* pass the half-close on */
	}
}

/* frees the connection once nothing is in flight and it is over; returns 1 if freed */
static int maybe_free(struct conn *c)
{
	if (c->d[0].pending || c->d[1].pending)
		return 0;
	if (!c->closing && !(c->d[0].done && c->d[1].done))
		return 0;
	close(c->cfd);
	close(c->bfd);
	for (int i = 0; i < 2; i++) {
		close(c->d[i].pr);
		close(c->d[i].pw);
	}
	free(c);
	return 1;
}

/* ---------------- poll-splice ---------------- */

static void arm_poll(struct conn *c, int di, int fd, unsigned mask)
{
	struct io_uring_sqe *sqe = sqe_get(1);
	io_uring_prep_poll_add(sqe, fd, mask);
	io_uring_sqe_set_data64(sqe, ud(c, di, K_POLL));
	c->d[di].pending++;
	st.polls++;
}

static void pump(struct conn *c, int di)
{
	struct dir *d = &c->d[di];
	for (;;) {
		if (d->inpipe > 0) {
			/* pipe holds bytes: only write, wait for writability if needed */
			st.splice_calls++;
			ssize_t n = splice(d->pr, NULL, d->dst, NULL, d->inpipe,
					   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n > 0) {
				d->inpipe -= n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				st.splice_eagain++;
				arm_poll(c, di, d->dst, POLLOUT);
				return;
			}
			fail(c);
			return;
		}
		if (d->eof) {
			finish_dir(c, di);
			return;
		}
		st.splice_calls++;
		ssize_t n = splice(d->src, NULL, d->pw, NULL, pipe_size,
				   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			d->inpipe += n;
			continue;
		}
		if (n == 0) {
			d->eof = 1;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			st.splice_eagain++;
			arm_poll(c, di, d->src, POLLIN);
			return;
		}
		fail(c);
		return;
	}
}

/* ---------------- ring-splice ---------------- */

static void arm_chain(struct conn *c, int di)
{
	struct dir *d = &c->d[di];
	struct io_uring_sqe *sqe = sqe_get(3);

	io_uring_prep_poll_add(sqe, d->src, POLLIN);
	sqe->flags |= IOSQE_IO_LINK; /* a failed/cancelled poll cancels the splices */
	io_uring_sqe_set_data64(sqe, ud(c, di, K_POLL));

	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_splice(sqe, d->src, -1, d->pw, -1, pipe_size,
			     SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	sqe->flags |= IOSQE_IO_HARDLINK; /* a short read must not cancel the write */
	io_uring_sqe_set_data64(sqe, ud(c, di, K_IN));

	sqe = io_uring_get_sqe(&ring);
	/* SPLICE_F_NONBLOCK: if the read got nothing, return -EAGAIN on the empty
	 * pipe instead of parking a worker; the socket itself stays blocking */
	io_uring_prep_splice(sqe, d->pr, -1, d->dst, -1, pipe_size,
			     SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	io_uring_sqe_set_data64(sqe, ud(c, di, K_OUT));

	d->pending += 3;
	st.polls++;
	st.ring_splices += 2;
}

static void drain(struct conn *c, int di)
{
	struct dir *d = &c->d[di];
	struct io_uring_sqe *sqe = sqe_get(1);
	io_uring_prep_splice(sqe, d->pr, -1, d->dst, -1, d->inpipe,
			     SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	io_uring_sqe_set_data64(sqe, ud(c, di, K_OUT));
	d->pending++;
	st.ring_splices++;
	st.drain_splices++;
}

static void ring_cqe(struct conn *c, int di, int kind, int res)
{
	struct dir *d = &c->d[di];
	d->pending--;
	switch (kind) {
	case K_POLL:
		break; /* a failed poll shows up as -ECANCELED on both splices */
	case K_IN:
		if (res > 0)
			d->inpipe += res;
		else if (res == 0)
			d->eof = 1;
		else if (res != -EAGAIN && res != -ECANCELED && res != -EINTR)
			d->err = 1;
		break;
	case K_OUT:
		if (res > 0)
			d->inpipe -= res;
		else if (res != -EAGAIN && res != -ECANCELED && res != -EINTR)
			d->err = 1;
		break;
	}
	if (d->pending)
		return; /* rest of the chain still in flight */
	if (c->closing)
		return;
	if (d->err) {
		fail(c);
		return;
	}
	if (d->inpipe > 0) {
		if (kind == K_OUT && res > 0)
			st.short_out++;
		drain(c, di); /* never leave bytes stranded in the pipe */
	} else if (d->eof) {
		finish_dir(c, di);
	} else {
		arm_chain(c, di);
	}
}

/* ---------------- accept / setup ---------------- */

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = sqe_get(1);
	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, K_ACCEPT);
}

static int make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if (fcntl(p[1], F_SETPIPE_SZ, pipe_size) < 0) {
		fprintf(stderr, "probe: F_SETPIPE_SZ %d: %s\n", pipe_size, strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	return 0;
}

static void on_accept(int cfd)
{
	int one = 1;
	int bfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (bfd < 0 || connect(bfd, (struct sockaddr *)&backend, sizeof backend) < 0) {
		perror("probe: connect backend");
		if (bfd >= 0)
			close(bfd);
		close(cfd);
		return;
	}
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (method == M_POLL_SPLICE) {
		fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);
		fcntl(bfd, F_SETFL, fcntl(bfd, F_GETFL) | O_NONBLOCK);
	}
	struct conn *c = calloc(1, sizeof *c);
	int p0[2], p1[2];
	if (!c || make_pipe(p0) < 0) {
		free(c);
		close(cfd);
		close(bfd);
		return;
	}
	if (make_pipe(p1) < 0) {
		close(p0[0]);
		close(p0[1]);
		free(c);
		close(cfd);
		close(bfd);
		return;
	}
	c->cfd = cfd;
	c->bfd = bfd;
	c->d[0] = (struct dir){ .src = cfd, .dst = bfd, .pr = p0[0], .pw = p0[1] };
	c->d[1] = (struct dir){ .src = bfd, .dst = cfd, .pr = p1[0], .pw = p1[1] };
	st.conns++;
	for (int di = 0; di < 2; di++) {
		if (method == M_POLL_SPLICE)
			arm_poll(c, di, c->d[di].src, POLLIN);
		else
			arm_chain(c, di);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: probe [--method poll-splice|ring-splice] [--pipe-size BYTES] "
			"LISTEN_PORT BACKEND_PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "method", required_argument, 0, 'm' },
		{ "pipe-size", required_argument, 0, 'p' },
		{ 0, 0, 0, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "m:p:", opts, NULL)) != -1) {
		if (o == 'm') {
			if (!strcmp(optarg, "poll-splice"))
				method = M_POLL_SPLICE;
			else if (!strcmp(optarg, "ring-splice"))
				method = M_RING_SPLICE;
			else
				usage();
		} else if (o == 'p') {
			pipe_size = atoi(optarg);
			if (pipe_size < 4096)
				usage();
		} else {
			usage();
		}
	}
	if (argc - optind != 2)
		usage();
	int lport = atoi(argv[optind]), bport = atoi(argv[optind + 1]);

	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: wake the wait */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	backend.sin_family = AF_INET;
	backend.sin_port = htons(bport);
	backend.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons(lport),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(listen_fd, (struct sockaddr *)&la, sizeof la) < 0)
		die("bind", errno);
	if (listen(listen_fd, 256) < 0)
		die("listen", errno);

	struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER |
					      IORING_SETUP_DEFER_TASKRUN |
					      IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
				     .cq_entries = 8192 };
	int ret = io_uring_queue_init_params(1024, &ring, &p);
	if (ret < 0)
		die("io_uring_queue_init", -ret);

	arm_accept();
	fprintf(stderr, "probe: %s pipe %d listening on %d -> %d\n",
		method == M_POLL_SPLICE ? "poll-splice" : "ring-splice", pipe_size, lport, bport);

	while (!stop) {
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			die("io_uring_submit_and_wait", -ret);
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			seen++;
			uint64_t u = cqe->user_data;
			int kind = u & 3, di = (u >> 2) & 1;
			struct conn *c = (struct conn *)(uintptr_t)(u & ~(uint64_t)7);
			if (!c) {
				if (cqe->res >= 0)
					on_accept(cqe->res);
				if (!(cqe->flags & IORING_CQE_F_MORE))
					arm_accept();
				continue;
			}
			if (method == M_POLL_SPLICE) {
				c->d[di].pending--;
				if (!c->closing) {
					if (cqe->res < 0)
						fail(c);
					else
						pump(c, di);
				}
			} else {
				ring_cqe(c, di, kind, cqe->res);
			}
			maybe_free(c);
		}
		io_uring_cq_advance(&ring, seen);
	}
	fprintf(stderr,
		"probe: conns %lu splice(2) calls %lu (EAGAIN %lu) polls %lu ring splices %lu "
		"drain splices %lu (after short out %lu)\n",
		st.conns, st.splice_calls, st.splice_eagain, st.polls, st.ring_splices,
		st.drain_splices, st.short_out);
	return 0;
}
