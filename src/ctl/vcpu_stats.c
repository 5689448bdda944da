#include "ctl/vcpu_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/small_file.h"

int vcpu_stats_read(const char *proc, int pid, int tid, struct vcpu_stats *out)
{
	char path[256], buf[2048], *p, *line;
	unsigned long long run_ns, wait_ns;
	int ret, field;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/%d/task/%d/stat", proc, pid, tid);
	if ((ret = small_file_read(path, buf, sizeof(buf))) < 0)
		return ret;
	/* "TID (COMM) S f4 ... f39": the name may hold spaces and parentheses. */
	if (!(p = strrchr(buf, ')')) || p[1] != ' ')
		return -EINVAL;
	p += 2;
	out->state = *p == 'R' ? 'r' : (*p == 'S' || *p == 'D') ? 'b' : '-';
	out->cpu = -1;
	for (field = 3; *p && field < 39; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EINVAL;
		p++;
	}
	if (field != 39)
		return -EINVAL;
	out->cpu = atoi(p);
	snprintf(path, sizeof(path), "%s/%d/task/%d/schedstat", proc, pid, tid);
	if ((ret = small_file_read(path, buf, sizeof(buf))) < 0)
		return ret;
	if (sscanf(buf, "%llu %llu", &run_ns, &wait_ns) != 2)
		return -EINVAL;
	out->time_s = run_ns / 1e9;
	out->steal_s = wait_ns / 1e9;
	snprintf(path, sizeof(path), "%s/%d/task/%d/status", proc, pid, tid);
	if ((ret = small_file_read(path, buf, sizeof(buf))) < 0)
		return ret;
	if ((line = strstr(buf, "\nCpus_allowed_list:"))) {
		line += strlen("\nCpus_allowed_list:");
		line += strspn(line, " \t");
		snprintf(out->affinity, sizeof(out->affinity), "%.*s", (int)strcspn(line, "\n"), line);
	}
	return 0;
}
