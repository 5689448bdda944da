#include "netdriver.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define RX 0
#define TX 1
#define DESC_GPA(q) ((q) ? 0x4000ULL : 0x0ULL)
#define AVAIL_GPA(q) (DESC_GPA(q) + 0x1000)
#define USED_GPA(q) (DESC_GPA(q) + 0x2000)
#define BUFS_GPA 0x10000ULL

static void *at(struct netdrv *d, uint64_t gpa) { return d->mem.base + gpa; }

static uint64_t rx_buf_gpa(const struct netdrv *d, uint16_t i)
{
	return BUFS_GPA + (uint64_t)i * NETDRV_BUF_LEN;
}

uint64_t netdrv_tx_buf_gpa(const struct netdrv *d, uint16_t slot)
{
	return BUFS_GPA + ((uint64_t)d->qsize + slot) * NETDRV_BUF_LEN;
}

struct virtq_desc *netdrv_tx_desc(struct netdrv *d) { return at(d, DESC_GPA(TX)); }

uint16_t netdrv_tx_slot(const struct netdrv *d) { return d->tx_avail % d->qsize; }

/* Publishes head in queue q's available ring. */
static void publish(struct netdrv *d, unsigned q, uint16_t *idx, uint16_t head)
{
	uint16_t *avail = at(d, AVAIL_GPA(q));

	avail[2 + *idx % d->qsize] = head;
	(*idx)++;
	/* The ring entry before the index, as the virtio memory model asks. */
	atomic_store_explicit((_Atomic uint16_t *)&avail[1], *idx, memory_order_release);
}

void netdrv_tx_submit_head(struct netdrv *d, uint16_t head) { publish(d, TX, &d->tx_avail, head); }

/*
 * Whether the device should interrupt for queue q (the available ring's
 * flags, VIRTQ_AVAIL_F_NO_INTERRUPT), with the ordering the change needs.
 */
static void interrupts(struct netdrv *d, unsigned q, bool on)
{
	uint16_t *avail = at(d, AVAIL_GPA(q));

	atomic_store_explicit((_Atomic uint16_t *)&avail[0], on ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT,
			      memory_order_release);
	/* The flag before the used index is read again (the device: its index, then the flag). */
	atomic_thread_fence(memory_order_seq_cst);
}

static uint16_t used_idx(struct netdrv *d, unsigned q)
{
	uint16_t *used = at(d, USED_GPA(q));

	return atomic_load_explicit((_Atomic uint16_t *)&used[1], memory_order_acquire);
}

static int start(struct netdrv *d, const char *socket, bool first, char *err, size_t errlen)
{
	uint8_t config[12];
	int ret;

	if ((ret = vhost_frontend_connect(&d->fe, socket, err, errlen)) < 0)
		return ret;
	if ((ret = vhost_frontend_get_config(&d->fe, config, sizeof(config), err, errlen)) < 0 ||
	    (ret = vhost_frontend_setup(&d->fe, d->want & d->fe.features, &d->mem, err,
					errlen)) < 0)
		goto fail;
	if (first) {
		memcpy(d->mac, config, 6);
		memcpy(&d->status, config + 6, 2);
		memcpy(&d->mtu, config + 10, 2);
	}
	/* Each queue resumes where the device left it: its used index. */
	for (unsigned q = 0; q < 2; q++)
		if ((ret = vhost_frontend_start_queue(
			 &d->fe, &d->mem, q, d->qsize, DESC_GPA(q), AVAIL_GPA(q), USED_GPA(q),
			 used_idx(d, q), d->kick_fd[q], d->call_fd[q], err, errlen)) < 0)
			goto fail;
	return 0;
fail:
	vhost_frontend_close(&d->fe);
	return ret;
}

int netdrv_open(struct netdrv *d, const char *socket, const uint8_t *mac, uint16_t qsize, char *err,
		size_t errlen)
{
	return netdrv_open_features(d, socket, mac, qsize, NETDRV_FEATURES, err, errlen);
}

int netdrv_open_features(struct netdrv *d, const char *socket, const uint8_t *mac, uint16_t qsize,
			 uint64_t features, char *err, size_t errlen)
{
	struct virtq_desc *rx;
	int ret;

	memset(d, 0, sizeof(*d));
	d->want = features;
	d->fe.sock = -1;
	d->kick_fd[0] = d->kick_fd[1] = d->call_fd[0] = d->call_fd[1] = -1;
	if (qsize == 0 || qsize > NETDRV_MAX_QSIZE || (qsize & (qsize - 1))) {
		snprintf(err, errlen, "queue size %u: a power of two up to %d", qsize,
			 NETDRV_MAX_QSIZE);
		return -EINVAL;
	}
	d->qsize = qsize;
	if ((ret = gmem_create(&d->mem, BUFS_GPA + 2ULL * qsize * NETDRV_BUF_LEN)) < 0) {
		snprintf(err, errlen, "shared memory: %s", strerror(-ret));
		return ret;
	}
	for (unsigned q = 0; q < 2; q++) {
		d->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		d->call_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->kick_fd[q] < 0 || d->call_fd[q] < 0) {
			snprintf(err, errlen, "eventfd: %s", strerror(errno));
			netdrv_close(d);
			return -errno;
		}
	}
	/*
	 * As Linux's driver under load: transmit completions are taken back
	 * when slots are needed (netdrv_tx_free), never by interrupt, and the
	 * receive interrupt is on only while netdrv_receive waits (NAPI's
	 * pattern), so the device does not signal what nobody waits for.
	 */
	interrupts(d, TX, false);
	interrupts(d, RX, false);
	/* Every receive buffer offered before the device starts. */
	rx = at(d, DESC_GPA(RX));
	for (uint16_t i = 0; i < qsize; i++) {
		rx[i] =
		    (struct virtq_desc){rx_buf_gpa(d, i), NETDRV_BUF_LEN, VIRTQ_DESC_F_WRITE, 0};
		publish(d, RX, &d->rx_avail, i);
	}
	if ((ret = start(d, socket, true, err, errlen)) < 0) {
		netdrv_close(d);
		return ret;
	}
	if (mac && memcmp(mac, d->mac, 6)) {
		snprintf(err, errlen, "the device's MAC is %02x:%02x:%02x:%02x:%02x:%02x",
			 d->mac[0], d->mac[1], d->mac[2], d->mac[3], d->mac[4], d->mac[5]);
		netdrv_close(d);
		return -EPROTO;
	}
	return 0;
}

int netdrv_reconnect(struct netdrv *d, const char *socket, char *err, size_t errlen)
{
	vhost_frontend_close(&d->fe);
	return start(d, socket, false, err, errlen);
}

void netdrv_close(struct netdrv *d)
{
	vhost_frontend_close(&d->fe);
	for (unsigned q = 0; q < 2; q++) {
		if (d->kick_fd[q] >= 0)
			close(d->kick_fd[q]);
		if (d->call_fd[q] >= 0)
			close(d->call_fd[q]);
		d->kick_fd[q] = d->call_fd[q] = -1;
	}
	if (d->mem.base)
		gmem_destroy(&d->mem);
	memset(&d->mem, 0, sizeof(d->mem));
}

unsigned netdrv_tx_free(struct netdrv *d)
{
	d->tx_seen = used_idx(d, TX);
	return d->qsize - (uint16_t)(d->tx_avail - d->tx_seen);
}

int netdrv_send(struct netdrv *d, const void *frame, size_t len)
{
	return netdrv_send_hdr(d, NULL, frame, len);
}

int netdrv_send_hdr(struct netdrv *d, const void *hdr, const void *frame, size_t len)
{
	uint16_t slot;
	uint8_t *buf;

	if (len + NETDRV_HDR_LEN > NETDRV_BUF_LEN)
		return -EMSGSIZE;
	if (netdrv_tx_free(d) == 0)
		return -EAGAIN;
	slot = netdrv_tx_slot(d);
	buf = at(d, netdrv_tx_buf_gpa(d, slot));
	if (hdr)
		memcpy(buf, hdr, NETDRV_HDR_LEN);
	else
		memset(buf, 0, NETDRV_HDR_LEN);
	memcpy(buf + NETDRV_HDR_LEN, frame, len);
	netdrv_tx_desc(d)[slot] =
	    (struct virtq_desc){netdrv_tx_buf_gpa(d, slot), (uint32_t)(NETDRV_HDR_LEN + len), 0, 0};
	publish(d, TX, &d->tx_avail, slot);
	return 0;
}

int netdrv_kick(struct netdrv *d)
{
	uint64_t one = 1;

	return write(d->kick_fd[TX], &one, 8) == 8 ? 0 : -errno;
}

int netdrv_receive(struct netdrv *d, void *buf, size_t len, int timeout_ms)
{
	return netdrv_receive_hdr(d, NULL, buf, len, timeout_ms);
}

int netdrv_receive_hdr(struct netdrv *d, void *hdr, void *buf, size_t len, int timeout_ms)
{
	struct pollfd p = {.fd = d->call_fd[RX], .events = POLLIN};
	uint32_t *used = (uint32_t *)((uint16_t *)at(d, USED_GPA(RX)) + 2);
	uint64_t v;
	int ready;

	for (;;) {
		if (d->rx_seen != used_idx(d, RX)) {
			uint32_t id = used[2 * (d->rx_seen % d->qsize)];
			uint32_t n = used[2 * (d->rx_seen % d->qsize) + 1];
			d->rx_seen++;
			if (id >= d->qsize || n > NETDRV_BUF_LEN)
				return -EPROTO;
			if (hdr)
				memcpy(hdr, at(d, rx_buf_gpa(d, (uint16_t)id)), NETDRV_HDR_LEN);
			n = n >= NETDRV_HDR_LEN ? n - NETDRV_HDR_LEN : 0;
			if (n > len)
				n = (uint32_t)len;
			memcpy(buf, (uint8_t *)at(d, rx_buf_gpa(d, (uint16_t)id)) + NETDRV_HDR_LEN,
			       n);
			publish(d, RX, &d->rx_avail, (uint16_t)id);
			return (int)n;
		}
		if (timeout_ms == 0)
			return 0;
		/* Asked for before the last look: a frame that came meanwhile is seen, or signalled. */
		interrupts(d, RX, true);
		if (d->rx_seen != used_idx(d, RX)) {
			interrupts(d, RX, false);
			continue;
		}
		ready = poll(&p, 1, timeout_ms);
		interrupts(d, RX, false);
		if (ready <= 0)
			return 0;
		if (read(d->call_fd[RX], &v, 8) < 0 && errno != EAGAIN)
			return -errno;
	}
}

size_t netdrv_udp_frame(uint8_t *f, const uint8_t *from, const uint8_t *to, uint8_t src,
			uint8_t dst, uint16_t dport, uint32_t seq)
{
	uint32_t sum = 0;

	memset(f, 0, 64);
	memcpy(f, to, 6);
	memcpy(f + 6, from, 6);
	f[12] = 0x08; /* IPv4 */
	f[14] = 0x45;
	f[17] = 50; /* total length: 20 + 8 + 22 */
	f[22] = 64; /* TTL */
	f[23] = 17; /* UDP */
	f[26] = 10, f[29] = src;
	f[30] = 10, f[33] = dst;
	for (int i = 14; i < 34; i += 2)
		sum += (uint32_t)(f[i] << 8 | f[i + 1]);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~((sum & 0xffff) + (sum >> 16)) & 0xffff;
	f[24] = (uint8_t)(sum >> 8), f[25] = (uint8_t)sum;
	f[34] = 40000 >> 8, f[35] = 40000 & 0xff;
	f[36] = (uint8_t)(dport >> 8), f[37] = (uint8_t)dport;
	f[39] = 30; /* UDP length */
	memcpy(f + 42, &seq, 4);
	return 64;
}
