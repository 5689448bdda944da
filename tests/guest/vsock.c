/*
 * vsock: AF_VSOCK from a shell, inside a guest whose busybox nc has none.
 * Built static (bench/meson.build) and appended to a test's initramfs.
 *
 *   vsock listen PORT          serve connections, each in its own process,
 *                              echoing each back to its sender
 *   vsock connect CID PORT     stdin to the peer, the peer to stdout; stdin's
 *                              end is a half-close, the peer's ends it
 *   vsock send CID PORT MIB    write MIB MiB, then report "sent N bytes in S s (R MiB/s)"
 *   vsock sink PORT            accept one connection, read it to its end and report
 *                              "received N bytes in S s (R MiB/s)"
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static int usage(void)
{
	fprintf(stderr, "usage: vsock listen PORT | connect CID PORT | send CID PORT MIB | sink PORT\n");
	return 2;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int listener(unsigned port)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		perror("vsock: listen");
		exit(1);
	}
	return fd;
}

static int connected(unsigned cid, unsigned port)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("vsock: connect");
		exit(1);
	}
	return fd;
}

static void echo(int fd)
{
	static char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write_all(fd, buf, (size_t)n) < 0)
			break;
	close(fd);
}

/* Both directions at once until the peer ends; stdin's end is passed on as a half-close. */
static int relay(int fd)
{
	static char buf[65536];
	bool in_open = true;

	for (;;) {
		struct pollfd p[2] = {{.fd = in_open ? 0 : -1, .events = POLLIN},
				      {.fd = fd, .events = POLLIN}};
		ssize_t n;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents) {
			n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(fd, SHUT_WR);
				in_open = false;
			} else if (write_all(fd, buf, (size_t)n) < 0) {
				return 1;
			}
		}
		if (p[1].revents) {
			n = read(fd, buf, sizeof(buf));
			if (n <= 0)
				return n < 0;
			if (write_all(1, buf, (size_t)n) < 0)
				return 1;
		}
	}
}

int main(int argc, char **argv)
{
	static char buf[65536];

	if (argc == 3 && !strcmp(argv[1], "listen")) {
		int l = listener((unsigned)strtoul(argv[2], NULL, 0));

		printf("vsock: listening on port %s\n", argv[2]);
		fflush(stdout);
		signal(SIGCHLD, SIG_IGN); /* children reap themselves */
		for (;;) {
			int c = accept(l, NULL, NULL);

			if (c < 0)
				continue;
			if (fork() == 0) {
				close(l);
				echo(c);
				_exit(0);
			}
			close(c);
		}
	}
	if (argc == 4 && !strcmp(argv[1], "connect"))
		return relay(connected((unsigned)strtoul(argv[2], NULL, 0),
				       (unsigned)strtoul(argv[3], NULL, 0)));
	if (argc == 5 && !strcmp(argv[1], "send")) {
		int fd = connected((unsigned)strtoul(argv[2], NULL, 0), (unsigned)strtoul(argv[3], NULL, 0));
		unsigned long long total = strtoull(argv[4], NULL, 0) << 20, sent = 0;
		double t0 = now(), dt;

		memset(buf, 'v', sizeof(buf));
		while (sent < total) {
			size_t n = total - sent < sizeof(buf) ? (size_t)(total - sent) : sizeof(buf);

			if (write_all(fd, buf, n) < 0) {
				perror("vsock: send");
				return 1;
			}
			sent += n;
		}
		shutdown(fd, SHUT_WR);
		/* Until the peer has it all: it closes when it has read the end. */
		while (read(fd, buf, sizeof(buf)) > 0) {
		}
		dt = now() - t0;
		printf("sent %llu bytes in %.3f s (%.1f MiB/s)\n", sent, dt, (double)sent / 1048576 / dt);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "sink")) {
		int l = listener((unsigned)strtoul(argv[2], NULL, 0)), c;
		unsigned long long got = 0;
		double t0 = 0, dt;
		ssize_t n;

		printf("vsock: listening on port %s\n", argv[2]);
		fflush(stdout);
		c = accept(l, NULL, NULL);
		if (c < 0) {
			perror("vsock: accept");
			return 1;
		}
		t0 = now();
		while ((n = read(c, buf, sizeof(buf))) > 0)
			got += (unsigned long long)n;
		dt = now() - t0;
		printf("received %llu bytes in %.3f s (%.1f MiB/s)\n", got, dt, (double)got / 1048576 / dt);
		return 0;
	}
	return usage();
}
