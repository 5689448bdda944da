/*
 * A disk's or a domain's quality of service: what domus-blk's scheduler
 * (blk/sched.h) guarantees it, allows it and gives it of what is left.
 * The same text is written in xl.cfg (disk_qos), the API, the CLI and
 * domus-blk's control protocol:
 *
 *   reserve-iops=N,reserve-bps=B,weight=W,limit-iops=N,limit-bps=B,
 *   burst-iops=N,burst-bps=B,burst-ms=T,class=interactive|batch,deadline-ms=T
 *
 * B takes k, m, g (powers of 1024) and N k, m (powers of 1000); 0 or none
 * clears a rate. docs/blk.md says what each key means.
 */
#ifndef DOMUS_BLK_QOS_H
#define DOMUS_BLK_QOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLK_QOS_DEFAULT_WEIGHT 100
#define BLK_QOS_MAX_WEIGHT 10000
#define BLK_QOS_MAX_IOPS 100000000ULL         /* 10^8: no device is near it */
#define BLK_QOS_MAX_BPS (1ULL << 40)          /* 1 TiB/s */
#define BLK_QOS_MAX_BURST_MS 3600000u         /* an hour */
#define BLK_QOS_DEFAULT_BURST_MS 1000u
#define BLK_QOS_DEFAULT_DEADLINE_MS 20u
#define BLK_QOS_MAX_DEADLINE_MS 10000u
#define BLK_QOS_TEXT_MAX 256

struct blk_qos {
	uint64_t reserve_iops, reserve_bps; /* 0: no reservation in that unit */
	uint32_t weight;                     /* share of what reservations leave, 1..10000 */
	uint64_t limit_iops, limit_bps;      /* 0: no limit in that unit */
	uint64_t burst_iops, burst_bps;      /* the rate a burst may reach (above the limit); 0: none */
	uint32_t burst_ms;                   /* how long a burst at that rate may last */
	bool interactive;                    /* Cello's class: served by deadline within its reservation */
	uint32_t deadline_ms;                /* an interactive request's deadline after it arrives */
};

/* No reservation, no limit, the default weight, batch. */
void blk_qos_default(struct blk_qos *q);
/*
 * Applies the keys of spec to q (keys not named keep their value, so a
 * live change names only what changes), then checks the whole. 0, or
 * -EINVAL with a message in err naming the key and its bounds (q is then
 * unchanged).
 */
int blk_qos_parse(const char *spec, struct blk_qos *q, char *err, size_t errlen);
/* Every key whose value is not the default, in the syntax above ("" for the defaults). */
void blk_qos_format(const struct blk_qos *q, char *buf, size_t len);
bool blk_qos_equal(const struct blk_qos *a, const struct blk_qos *b);

#endif
