/*
 * What the host's scheduler knows of a vCPU thread, from /proc: the CPU it
 * ran on last, whether it runs, its CPU time, and the time it waited for a
 * CPU while runnable (what KVM tells the guest as steal time).
 */
#ifndef DOMUS_VCPU_STATS_H
#define DOMUS_VCPU_STATS_H

struct vcpu_stats {
	int cpu;         /* the host CPU it ran on last */
	char state;      /* 'r' running or runnable, 'b' blocked (halted), '-' other */
	double time_s;   /* CPU time */
	double steal_s;  /* runnable, waiting for a CPU */
	char affinity[128]; /* Cpus_allowed_list */
};

/* Reads thread tid of process pid under proc (normally "/proc"). 0 or -errno. */
int vcpu_stats_read(const char *proc, int pid, int tid, struct vcpu_stats *out);

#endif
