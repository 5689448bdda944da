/*
 * `domus run`: check the user's input before touching KVM, then boot the
 * domain, and boot it again after a guest reboot if asked to.
 */
#include "vmm/run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "devices/virtio_net.h"
#include "devices/virtio_pmem.h"
#include "devices/virtio_vsock.h"
#include "devices/vhost_vsock.h"
#include "lib/log.h"
#include "lib/passed_fd.h"
#include "vmm/boot.h"
#include "vmm/vm.h"

void vm_config_defaults(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->memory_mib = VM_DEFAULT_MEMORY_MIB;
	cfg->vcpus = 1;
	cfg->cmdline = VM_DEFAULT_CMDLINE;
	cfg->on_reboot = ON_REBOOT_RESTART;
	cfg->console = CONSOLE_SERIAL;
	cfg->balloon = true;
	cfg->balloon_deflate_on_oom = true;
}

static int read_initrd(const char *path, uint8_t **data, uint64_t *size, uint64_t mem_bytes)
{
	struct stat st;
	uint64_t got = 0;
	int fd = passed_open(path, O_RDONLY);

	if (fd < 0) {
		log_warn("cannot open initrd %s", path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_warnx("initrd %s is not a regular file", path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size >= mem_bytes) {
		log_warnx("initrd %s (%llu MiB) is larger than the domain's memory (%llu MiB)", path,
			  (unsigned long long)st.st_size >> 20, (unsigned long long)mem_bytes >> 20);
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	*data = malloc(*size ? *size : 1);
	if (!*data) {
		log_warnx("initrd %s: out of memory", path);
		close(fd);
		return -1;
	}
	while (got < *size) {
		ssize_t n = read(fd, *data + got, *size - got);
		if (n <= 0) {
			log_warnx("reading initrd %s failed", path);
			close(fd);
			return -1;
		}
		got += (uint64_t)n;
	}
	close(fd);
	return 0;
}

static int open_disk(const struct disk_config *d)
{
	struct stat st;
	int fd;

	fd = passed_open(d->path, d->readonly ? O_RDONLY : O_RDWR);
	if (fd < 0) {
		if (!d->readonly && (errno == EACCES || errno == EROFS || errno == EPERM))
			log_warn("disk %s cannot be opened for writing (add ,ro to attach it read-only)",
				 d->path);
		else
			log_warn("cannot open disk %s", d->path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		log_warnx("disk %s is not a regular file or block device", d->path);
		close(fd);
		return -1;
	}
	/*
	 * Root may open a file nobody may write; a user who marked an image
	 * read-only meant it, so refuse rather than write through.
	 */
	if (!d->readonly && S_ISREG(st.st_mode) && !(st.st_mode & 0222)) {
		log_warnx("disk %s is read-only (mode %04o); add ,ro to attach it read-only", d->path,
			  st.st_mode & 07777);
		close(fd);
		return -1;
	}
	if (S_ISREG(st.st_mode) && st.st_size < 512) {
		log_warnx("disk %s is smaller than one 512-byte sector", d->path);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The terminal is the guest's console: raw, so keys (Ctrl-C too) go to the
 * guest and the guest does its own echo. Restored when the domain ends.
 */
static int terminal_raw(struct termios *saved)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, saved) < 0)
		return 0;
	raw = *saved;
	cfmakeraw(&raw);
	raw.c_oflag |= OPOST | ONLCR; /* our own messages still start at column 0 */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
		return 0;
	return 1;
}

#define CONSOLE_ESCAPE 0x1d /* Ctrl-] */

/* `domus run`'s frontend: the terminal is the console. */
struct terminal_frontend {
	int stdin_open;
};

static unsigned terminal_poll_fds(void *opaque, struct pollfd *p, unsigned max)
{
	struct terminal_frontend *t = opaque;

	if (!t->stdin_open || max < 1)
		return 0;
	p[0] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
	return 1;
}

static void terminal_poll_ready(void *opaque, struct vm *vm, struct pollfd *p, unsigned n)
{
	struct terminal_frontend *t = opaque;
	unsigned char buf[256];
	ssize_t len;

	if (n < 1 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	len = read(STDIN_FILENO, buf, sizeof(buf));
	if (len <= 0) {
		if (len == 0 || (errno != EINTR && errno != EAGAIN))
			t->stdin_open = 0; /* input closed: the domain keeps running */
		return;
	}
	if (memchr(buf, CONSOLE_ESCAPE, (size_t)len)) {
		vm_request_stop(vm, VM_INTERRUPTED, "console escape (Ctrl-]) pressed");
		return;
	}
	vm_console_input(vm, buf, (size_t)len);
}

static int check_config(const struct vm_config *cfg)
{
	char err[256];
	unsigned vfr = 0;

	if (!cfg->kernel) {
		log_warnx("no kernel given (--kernel FILE)");
		return -1;
	}
	if (cfg->vcpus < 1 || cfg->vcpus > VM_MAX_VCPUS) {
		log_warnx("vcpus %u is out of range: 1 to %u", cfg->vcpus, VM_MAX_VCPUS);
		return -1;
	}
	if (cfg->npmems > VM_MAX_PMEM) {
		log_warnx("%u pmem devices: at most %u", cfg->npmems, VM_MAX_PMEM);
		return -1;
	}
	if (cfg->nshms > VM_MAX_SHM) {
		log_warnx("%u shared memory devices: at most %u", cfg->nshms, VM_MAX_SHM);
		return -1;
	}
	for (unsigned i = 0; i < cfg->nnics; i++) {
		if (cfg->nics[i].vfr && ++vfr > 1) {
			log_warnx("network interface %u: one --net vfr per domain (its domus-net "
				  "has one port)",
				  i);
			return -1;
		}
		if (!cfg->nics[i].socket[0] && !cfg->nics[i].tap[0] && !cfg->nics[i].vfr) {
			log_warnx("network interface %u has no back-end (a domus-net port is domusd's to give)", i);
			return -1;
		}
	}
	if (vm_config_check_vsock(&cfg->vsock, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return -1;
	}
	if (vm_config_check_memory(cfg, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

static int exit_status(enum vm_stop reason, const char *detail)
{
	switch (reason) {
	case VM_POWEROFF:
		log_debug("%s", detail);
		return RUN_EXIT_OK;
	case VM_REBOOT:
		log_info("%s; exiting (--on-reboot exit)", detail);
		return RUN_EXIT_OK;
	case VM_PANIC:
		log_warnx("%s", detail);
		return RUN_EXIT_PANIC;
	case VM_TRIPLE_FAULT:
		log_warnx("%s", detail);
		return RUN_EXIT_TRIPLE_FAULT;
	default:
		log_warnx("%s", detail[0] ? detail : "domain stopped");
		return RUN_EXIT_ERROR;
	}
}

/* Reads kernel and initrd and checks they fit the domain; logs what is wrong. */
static int load_boot_files(const struct vm_config *cfg, struct vm_resources *res)
{
	char err[512];

	if (kernel_load_file(cfg->kernel, res->kernel, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return -1;
	}
	if (cfg->initrd &&
	    read_initrd(cfg->initrd, &res->initrd, &res->initrd_size, cfg->memory_mib << 20) < 0)
		return -1;
	if (boot_check_fit(res->kernel, res->initrd_size, cfg->cmdline, cfg->memory_mib << 20, err,
			   sizeof(err)) < 0) {
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

int vmm_domain_open(struct vmm_domain *d, const struct vm_config *cfg)
{
	memset(d, 0, sizeof(*d));
	d->served = *cfg;
	d->cfg = &d->served;
	d->res.kernel = &d->kernel;
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		d->res.disk_fds[i] = -1;
	for (unsigned i = 0; i < VM_MAX_PMEM; i++)
		d->res.pmem_fds[i] = -1;
	for (unsigned i = 0; i < VM_MAX_SHM; i++)
		d->res.shms[i] = (struct ivshmem_backing){.fd = -1};
	d->res.vsock_fd = -1;
	if (check_config(cfg) < 0 || load_boot_files(cfg, &d->res) < 0)
		return -EINVAL;
	for (unsigned i = 0; i < cfg->nnics; i++) {
		/* A queue pair per vCPU, as the TAP allows. */
		unsigned want = cfg->vcpus < VIRTIO_NET_PAIRS_MAX ? cfg->vcpus : VIRTIO_NET_PAIRS_MAX;
		char err[256];
		int n;

		if (cfg->nics[i].socket[0] || cfg->nics[i].vfr)
			continue;
		if ((n = tap_open_vnet(cfg->nics[i].tap, want, d->res.tap_fds[i], err, sizeof(err))) < 0) {
			log_warnx("network interface %u: %s", i, err);
			return -EINVAL;
		}
		d->res.tap_queues[i] = (unsigned)n;
		if (d->res.tap_queues[i] < want)
			log_info("network interface %u: TAP %s gave %u queue(s) of %u (one made without "
				 "multi_queue has one): as many queue pairs",
				 i, cfg->nics[i].tap, d->res.tap_queues[i], want);
	}
	if (cfg->vsock.cid) {
		char err[512];
		/* Both made now: the confined VMM can neither bind a socket nor open a device. */
		int fd = cfg->vsock.vhost ? vhost_vsock_open(&cfg->vsock, err, sizeof(err))
					  : virtio_vsock_listen(&cfg->vsock, err, sizeof(err));

		if (fd < 0) {
			log_warnx("%s", err);
			return -EINVAL;
		}
		d->res.vsock_fd = fd;
	}
	for (unsigned i = 0; i < cfg->npmems; i++) {
		char err[DISK_PATH_MAX + 256];
		int fd = pmem_open(&cfg->pmems[i], &d->res.pmem_sizes[i], err, sizeof(err));

		if (fd < 0) {
			log_warnx("%s", err);
			return -EINVAL;
		}
		d->res.pmem_fds[i] = fd;
	}
	/* Connected now: a confined VMM reaches no socket by path, and the server hands out the memory. */
	for (unsigned i = 0; i < cfg->nshms; i++) {
		char err[DISK_PATH_MAX + 256] = "";

		if (ivshmem_backing_open(&cfg->shms[i], &d->res.shms[i], err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		if (!cfg->disks[i].in_vmm)
			continue; /* a back-end's, or domus-blk's: its supervisor opens the image */
		d->res.disk_fds[i] = open_disk(&cfg->disks[i]);
		if (d->res.disk_fds[i] < 0)
			return -EINVAL;
	}
	/* domus-blk's disks and --net vfr's port are the front's to serve (ctl/run_front.c). */
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (!cfg->disks[i].vhost_user && !cfg->disks[i].in_vmm) {
			log_warnx("disk %u (%s): no domus-blk serves it here", i, cfg->disks[i].path);
			return -EINVAL;
		}
	for (unsigned i = 0; i < cfg->nnics; i++)
		if (cfg->nics[i].vfr && !cfg->nics[i].socket[0]) {
			log_warnx("network interface %u: no domus-net serves it here", i);
			return -EINVAL;
		}
	return 0;
}

enum vm_stop vmm_domain_boot(struct vmm_domain *d, const struct vm_frontend *fe, char *detail,
			     size_t detail_len)
{
	detail[0] = 0;
	/* After a reboot the files are read again, as firmware would, and checked again. */
	if (d->boots > 0 && load_boot_files(d->cfg, &d->res) < 0) {
		snprintf(detail, detail_len, "%s", log_last_warning());
		return VM_ERROR;
	}
	d->boots++;
	return vm_run_once(d->cfg, &d->res, fe, detail, detail_len);
}

void vmm_domain_close(struct vmm_domain *d)
{
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		if (d->res.disk_fds[i] >= 0)
			close(d->res.disk_fds[i]);
	for (unsigned i = 0; i < VM_MAX_PMEM; i++)
		if (d->res.pmem_fds[i] >= 0)
			close(d->res.pmem_fds[i]);
	for (unsigned i = 0; i < VM_MAX_NICS; i++)
		for (unsigned q = 0; q < d->res.tap_queues[i]; q++)
			close(d->res.tap_fds[i][q]);
	for (unsigned i = 0; i < VM_MAX_SHM; i++)
		ivshmem_backing_close(&d->res.shms[i]);
	if (d->res.vsock_fd >= 0)
		close(d->res.vsock_fd);
	free(d->res.initrd);
	d->res.initrd = NULL;
	kernel_free(&d->kernel);
}

int vmm_domain_run(struct vmm_domain *d)
{
	char detail[256];
	enum vm_stop reason;
	int status;
	struct termios saved_tty;
	int raw = 0;
	struct terminal_frontend term = {.stdin_open = 1};
	const struct vm_frontend fe = {
		.console_fd = STDOUT_FILENO,
		.poll_fds = terminal_poll_fds,
		.poll_ready = terminal_poll_ready,
		.opaque = &term,
	};

	raw = terminal_raw(&saved_tty);
	for (;;) {
		reason = vmm_domain_boot(d, &fe, detail, sizeof(detail));
		if (reason == VM_REBOOT && d->cfg->on_reboot == ON_REBOOT_RESTART) {
			log_info("%s; restarting the domain (boot %u)", detail, d->boots + 1);
			continue;
		}
		status = exit_status(reason, detail);
		break;
	}
	if (raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	return status;
}
