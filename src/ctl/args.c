#include "ctl/args.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char run_usage[] =
	"usage: domus run --kernel FILE [--initrd FILE] [--cmdline STR] [--memory MiB] [--maxmem MiB]\n"
	"                 [--vcpus N] [--disk PATH[,ro][,format=qcow2][,cache=MODE][,queues=N][,in-vmm] | vhost-user:SOCKET[,queues=N]]...\n"
	"                 [--pmem PATH[,ro|,rw]]... [--shm path=P[,name=N][,size=S][,doorbell=0|1][,vectors=N]]...\n"
	"                 [--net tap=IFNAME[,mac=MAC] | vhost-user:SOCKET[,mac=MAC]]...\n"
	"                 [--net vfr[,ip=A.B.C.D/N][,mac=MAC][,uplink=TAP:ADDR/PREFIX[:GATEWAY]]\n"
	"                        [,mode=none|routed|nat][,default=accept|drop|reject]]\n"
	"                 [--vsock cid=N,socket=PATH | cid=N,vhost]\n"
	"                 [--on-reboot restart|exit] [--no-balloon] [--gang[=SKEW_MS]]\n"
	"                 [--console serial|virtio] [--config XL.CFG] [--dry-run] [--verbose]\n";

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A decimal number with nothing around it, within [min, max]. */
static int parse_number(const char *s, unsigned long long min, unsigned long long max,
			unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int mem_size_parse(const char *s, uint64_t *mib)
{
	static const char suffixes[] = "bkmgt";
	unsigned long long v, bytes;
	const char *suf;
	char digits[32];
	size_t n = s ? strspn(s, "0123456789") : 0;
	unsigned shift;

	if (n == 0 || n >= sizeof(digits))
		return -EINVAL;
	memcpy(digits, s, n);
	digits[n] = 0;
	if (parse_number(digits, 1, ~0ULL, &v) < 0)
		return -EINVAL;
	if (!s[n]) {
		suf = suffixes + 2; /* MiB */
	} else {
		suf = s[n + 1] ? NULL : strchr(suffixes, s[n] | 0x20);
		if (!suf || !*suf)
			return -EINVAL;
	}
	shift = 10 * (unsigned)(suf - suffixes);
	if (shift && v > (~0ULL >> shift))
		return -EINVAL;
	bytes = v << shift;
	if (bytes % (1ULL << 20))
		return -EINVAL; /* the balloon moves whole MiB */
	*mib = bytes >> 20;
	return *mib ? 0 : -EINVAL;
}

int disk_arg_parse(const char *arg, struct disk_config *d, char *err, size_t errlen)
{
	const char *comma = strrchr(arg, ',');
	size_t len = strlen(arg);
	const char *end = arg + len;

	d->readonly = false;
	d->vhost_user = false;
	d->queues = 0;
	if (!strncmp(arg, "vhost-user:", 11)) {
		/* A back-end's socket: the back-end decides read-only, not us; queues= is ours. */
		const char *sock = arg + 11, *opt = strchr(sock, ',');
		size_t slen = opt ? (size_t)(opt - sock) : strlen(sock);

		if (!slen || (opt && (strncmp(opt, ",queues=", 8) || disk_queues_parse(opt + 8, d) < 0)))
			return bad(err, errlen,
				   "--disk %s: expected vhost-user:SOCKET[,queues=N] (N 1 to %d)", arg,
				   VM_MAX_DISK_QUEUES);
		if (slen >= 108)
			return bad(err, errlen, "--disk %s: socket path too long", arg);
		memcpy(d->path, sock, slen);
		d->path[slen] = 0;
		d->vhost_user = true;
		return 0;
	}
	d->in_vmm = false;
	d->qcow2 = false;
	d->direct = d->writethrough = false;
	/*
	 * Options after the path: ro or rw, format=raw or format=qcow2, and in-vmm
	 * (served inside the VMM, not by domus-blk).
	 */
	while (comma) {
		/* The option between this comma and the end of the previous one. */
		char opt[64];
		size_t olen = (size_t)(end - (comma + 1));

		snprintf(opt, sizeof(opt), "%.*s", (int)(olen < sizeof(opt) ? olen : sizeof(opt) - 1),
			 comma + 1);
		if (olen >= sizeof(opt))
			opt[0] = '?';
		if (!strcmp(opt, "ro"))
			d->readonly = true;
		else if (!strcmp(opt, "in-vmm"))
			d->in_vmm = true;
		else if (!strcmp(opt, "format=qcow2"))
			d->qcow2 = true;
		else if (!strncmp(opt, "cache=", 6) && disk_cache_parse(opt + 6, d) == 0)
			;
		else if (!strncmp(opt, "queues=", 7)) {
			if (disk_queues_parse(opt + 7, d) < 0)
				return bad(err, errlen, "--disk %s: queues '%s' must be 1 to %d", arg,
					   opt + 7, VM_MAX_DISK_QUEUES);
		} else if (strcmp(opt, "rw") && strcmp(opt, "format=raw"))
			return bad(err, errlen,
				   "--disk %s: unknown option '%s' (expected ro, rw, format=raw|qcow2, "
				   "cache=writeback|writethrough|none|directsync, queues=N or in-vmm)",
				   arg, opt);
		end = comma;
		len = (size_t)(comma - arg);
		comma = memrchr(arg, ',', len);
	}
	if (len == 0)
		return bad(err, errlen, "--disk %s: empty path", arg);
	if (d->qcow2 && d->in_vmm)
		return bad(err, errlen, "--disk %s: qcow2 is served by domus-blk, not in the VMM", arg);
	if ((d->direct || d->writethrough) && d->in_vmm)
		return bad(err, errlen, "--disk %s: cache modes are domus-blk's, not the VMM's", arg);
	if (len >= sizeof(d->path))
		return bad(err, errlen, "--disk: path longer than %zu bytes", sizeof(d->path) - 1);
	memcpy(d->path, arg, len);
	d->path[len] = 0;
	return 0;
}

/* Finds --config FILE (or --config=FILE) ahead of the other options. */
static const char *find_config(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			return argv[i + 1];
		if (!strncmp(argv[i], "--config=", 9))
			return argv[i] + 9;
	}
	return NULL;
}

static bool has_option(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);

	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], name, n) && (argv[i][n] == 0 || argv[i][n] == '='))
			return true;
	return false;
}

int run_args_parse(int argc, char **argv, struct domain_spec *spec, char *err, size_t errlen)
{
	enum { OPT_ON_REBOOT = 256, OPT_CONSOLE, OPT_CONFIG, OPT_DRY_RUN, OPT_MAXMEM, OPT_NO_BALLOON, OPT_PMEM,
	       OPT_NET, OPT_GANG, OPT_SHM, OPT_VSOCK };
	struct vm_config *cfg = &spec->vm;
	const char *config = find_config(argc, argv);
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"initrd", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'c'},
		{"memory", required_argument, NULL, 'm'},
		{"maxmem", required_argument, NULL, OPT_MAXMEM},
		{"no-balloon", no_argument, NULL, OPT_NO_BALLOON},
		{"gang", optional_argument, NULL, OPT_GANG},
		{"vcpus", required_argument, NULL, 'n'},
		{"disk", required_argument, NULL, 'd'},
		{"pmem", required_argument, NULL, OPT_PMEM},
		{"shm", required_argument, NULL, OPT_SHM},
		{"net", required_argument, NULL, OPT_NET},
		{"vsock", required_argument, NULL, OPT_VSOCK},
		{"on-reboot", required_argument, NULL, OPT_ON_REBOOT},
		{"console", required_argument, NULL, OPT_CONSOLE},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"dry-run", no_argument, NULL, OPT_DRY_RUN},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	unsigned long long v;
	int c, ret;

	domain_spec_defaults(spec);
	if (config) {
		ret = domain_spec_load(config, spec, err, errlen);
		if (ret < 0)
			return ret;
	}
	/* 0, not 1: glibc then also forgets a half-parsed option cluster of an earlier call. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:i:c:m:n:d:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'k': cfg->kernel = optarg; break;
		case 'i': cfg->initrd = optarg; break;
		case 'c': cfg->cmdline = optarg; break;
		case 'm':
			if (parse_number(optarg, 1, VM_MAX_MEMORY_MIB, &v) < 0)
				return bad(err, errlen,
					   "--memory '%s': expected a size in MiB from 1 to %llu",
					   optarg, (unsigned long long)VM_MAX_MEMORY_MIB);
			cfg->memory_mib = v;
			break;
		case OPT_MAXMEM:
			if (parse_number(optarg, 1, VM_MAX_MEMORY_MIB, &v) < 0)
				return bad(err, errlen,
					   "--maxmem '%s': expected a size in MiB from 1 to %llu",
					   optarg, (unsigned long long)VM_MAX_MEMORY_MIB);
			cfg->maxmem_mib = v;
			break;
		case OPT_NO_BALLOON: cfg->balloon = false; break;
		case OPT_GANG:
			if (optarg && parse_number(optarg, 1, VM_GANG_SKEW_MAX_US / 1000, &v) < 0)
				return bad(err, errlen, "--gang=%s: expected a bound in ms from 1 to %u", optarg,
					   VM_GANG_SKEW_MAX_US / 1000);
			spec->gang = 1;
			if (optarg)
				spec->gang_skew_ms = (unsigned)v;
			domain_spec_gang(spec, 0);
			break;
		case 'n':
			if (parse_number(optarg, 1, VM_MAX_VCPUS, &v) < 0)
				return bad(err, errlen, "--vcpus '%s': expected a number from 1 to %u",
					   optarg, VM_MAX_VCPUS);
			cfg->vcpus = (unsigned)v;
			break;
		case 'd':
			if (cfg->ndisks == VM_MAX_DISKS)
				return bad(err, errlen, "too many disks: at most %u", VM_MAX_DISKS);
			ret = disk_arg_parse(optarg, &cfg->disks[cfg->ndisks], err, errlen);
			if (ret < 0)
				return ret;
			cfg->ndisks++;
			break;
		case OPT_PMEM: {
			char why[256];
			if (cfg->npmems == VM_MAX_PMEM)
				return bad(err, errlen, "too many pmem devices: at most %u", VM_MAX_PMEM);
			if (pmem_spec_parse(optarg, &cfg->pmems[cfg->npmems], why, sizeof(why)) < 0)
				return bad(err, errlen, "--pmem %s", why);
			cfg->npmems++;
			break;
		}
		case OPT_SHM: {
			char why[512];
			if (cfg->nshms == VM_MAX_SHM)
				return bad(err, errlen, "too many shared memory devices: at most %u", VM_MAX_SHM);
			if (shm_option_parse(optarg, cfg->nshms, &cfg->shms[cfg->nshms], why, sizeof(why)) < 0)
				return bad(err, errlen, "--shm %s", why);
			cfg->nshms++;
			break;
		}
		case OPT_VSOCK: {
			char why[256];
			if (vsock_spec_parse(optarg, &cfg->vsock, why, sizeof(why)) < 0)
				return bad(err, errlen, "--vsock %s", why);
			break;
		}
		case OPT_NET: {
			char why[256];
			if (cfg->nnics == VM_MAX_NICS)
				return bad(err, errlen, "too many network interfaces: at most %u", VM_MAX_NICS);
			if (nic_spec_parse(optarg, cfg->nnics, &cfg->nics[cfg->nnics], why, sizeof(why)) < 0)
				return bad(err, errlen, "--net %s", why);
			for (unsigned i = 0; cfg->nics[cfg->nnics].vfr && i < cfg->nnics; i++)
				if (cfg->nics[i].vfr)
					return bad(err, errlen,
						   "--net %s: one --net vfr per domain (its domus-net has one port)",
						   optarg);
			cfg->nnics++;
			break;
		}
		case OPT_ON_REBOOT:
			if (!strcmp(optarg, "restart"))
				cfg->on_reboot = ON_REBOOT_RESTART;
			else if (!strcmp(optarg, "exit"))
				cfg->on_reboot = ON_REBOOT_EXIT;
			else
				return bad(err, errlen,
					   "--on-reboot '%s': expected restart or exit", optarg);
			break;
		case OPT_CONSOLE:
			if (!strcmp(optarg, "serial"))
				cfg->console = CONSOLE_SERIAL;
			else if (!strcmp(optarg, "virtio"))
				cfg->console = CONSOLE_VIRTIO;
			else
				return bad(err, errlen, "--console '%s': expected serial or virtio",
					   optarg);
			break;
		case OPT_CONFIG: break; /* loaded above */
		case OPT_DRY_RUN: cfg->dry_run = true; break;
		case 'v': cfg->verbose++; break;
		case 'h': return 1;
		case ':':
			return bad(err, errlen, "option %s needs an argument", argv[optind - 1]);
		default:
			return bad(err, errlen, "unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad(err, errlen, "unexpected argument '%s'", argv[optind]);
	if (!cfg->kernel)
		return bad(err, errlen, "--kernel FILE (or --config FILE) is required");
	/* --memory alone, or above a config's maxmem, sizes the RAM as before. */
	if (cfg->maxmem_mib < cfg->memory_mib && !has_option(argc, argv, "--maxmem"))
		cfg->maxmem_mib = cfg->memory_mib;
	return vm_config_check_memory(cfg, err, errlen);
}
