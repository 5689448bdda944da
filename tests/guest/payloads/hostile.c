/*
 * A hostile guest: it works the VMM's virtio-balloon and virtio-rng as hard
 * as a driver can within the virtio rules, forever, so that a test can check
 * that the host keeps answering and the other domains run on meanwhile.
 *
 * It finds both devices on PCI bus 0 (configuration mechanism #1 at
 * 0xcf8/0xcfc), enables their memory BAR, walks their virtio capabilities
 * for the common configuration and the notify region, negotiates VERSION_1
 * (and INDIRECT_DESC for the rng), puts the balloon's inflate queue and the
 * rng's request queue in its own RAM and sets DRIVER_OK. No interrupts: it
 * looks at a used ring only to know when a descriptor may be reused. Then,
 * round after round, a full ring of each:
 *
 *   - inflate: every buffer is a 1 MiB page list (262144 page numbers). Of
 *     its first entries half are the payload's own pages, every other page of
 *     the region the rng writes, so that no two make one run; the other half
 *     are frames outside RAM (random, just past RAM, in the PCI window,
 *     0xffffffff). Never a page of its code, stack or rings: those would come
 *     back zeroed.
 *   - rng: every buffer is 32 MiB of the same region, or an indirect table of
 *     256 such descriptors (8 GiB).
 *
 * Odd rounds notify after every buffer (as many exits as possible), even
 * rounds fill the ring and notify once (as much work in one exit as the ring
 * holds). It prints "hostile: flooding" once set up, then "hostile: round N"
 * about every second (2^31 TSC ticks), so that a test sees it at work; a
 * device that stops serving (NEEDS_RESET) is named in that line.
 *
 * With "refill" on its command line (and a second vCPU) it floods the
 * balloon two-handed: vCPU 1 keeps the inflate ring full, adding a buffer as
 * soon as the device has used one, while vCPU 0 notifies it and floods the
 * rng between notifies. A device that serves until the ring is empty then
 * never returns from that notify. Its rounds are then vCPU 1's, a ring's
 * worth of buffers each.
 */
#include <stdbool.h>

#include "payload.h"

#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define PCI_SLOTS 32
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_STATUS_CAP_LIST (0x10 << 16) /* in the dword at PCI_COMMAND */
#define PCI_BAR0 0x10
#define PCI_CAPABILITY_LIST 0x34
#define PCI_CAP_ID_VNDR 0x09

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_DEVICE_RNG 0x1044
#define VIRTIO_DEVICE_BALLOON 0x1045
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2

/* The common configuration structure (virtio 1.2, 4.1.4.3): offsets. */
#define COMMON_DEVICE_FEATURE_SELECT 0x00
#define COMMON_DEVICE_FEATURE 0x04
#define COMMON_DRIVER_FEATURE_SELECT 0x08
#define COMMON_DRIVER_FEATURE 0x0c
#define COMMON_STATUS 0x14
#define COMMON_QUEUE_SELECT 0x16
#define COMMON_QUEUE_SIZE 0x18
#define COMMON_QUEUE_ENABLE 0x1c
#define COMMON_QUEUE_NOTIFY_OFF 0x1e
#define COMMON_QUEUE_DESC 0x20
#define COMMON_QUEUE_DRIVER 0x28
#define COMMON_QUEUE_DEVICE 0x30

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define STATUS_NEEDS_RESET 0x40

#define F_INDIRECT_DESC 28
#define F_VERSION_1 32

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4
#define AVAIL_F_NO_INTERRUPT 1

#define QUEUE_BALLOON_INFLATE 0
#define QUEUE_RNG_REQUEST 0
#define QUEUE_MAX 128

#define PAGE_SHIFT 12
#define MIB (1ULL << 20)
#define PFN_LIST_ENTRIES (MIB / 4)
/* Entries rewritten every round: well past what a device should take from one buffer. */
#define PFNS_REWRITTEN 8192
#define RNG_BUFFER_BYTES (32 * MIB)
#define RNG_INDIRECT_ENTRIES 256
/* Where the flood's region starts: above the image, on a 2 MiB page of its own. */
#define FLOOD_ALIGN (2 * MIB)
#define REPORT_TSC_TICKS (1ULL << 31)

/* The split virtqueue (virtio 1.2, 2.7), sized for the largest queue used here. */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[QUEUE_MAX];
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct {
		uint32_t id;
		uint32_t len;
	} ring[QUEUE_MAX];
};

struct queue {
	/* The device reads the rings from here; alignment as the spec asks (16, 2, 4). */
	struct virtq_desc desc[QUEUE_MAX] __attribute__((aligned(16)));
	struct virtq_avail avail __attribute__((aligned(2)));
	struct virtq_used used __attribute__((aligned(4)));
	volatile uint16_t *notify;
	uint16_t size;
	uint16_t next_avail; /* our copy of avail.idx */
};

struct virtio_device {
	const char *name;
	unsigned slot;
	volatile uint8_t *common;
	volatile uint8_t *notify_base;
	uint32_t notify_multiplier;
	struct queue *queue;
};

/* The BARs live at 3.5 GiB, above the 1 GiB that pvh.S maps: this maps 3 to 4 GiB. */

static struct queue balloon_queue __attribute__((aligned(4096)));
static struct queue rng_queue __attribute__((aligned(4096)));
static struct virtq_desc rng_indirect[RNG_INDIRECT_ENTRIES] __attribute__((aligned(16)));

extern char payload_end[];

/* Just above the image, not in it: 1 MiB of .bss would be 1 MiB of zeros in the ELF file. */
static uint32_t *pfn_list;
static uint64_t flood_base, flood_bytes; /* what the rng writes and the balloon takes back */
static uint64_t ram_end_pfn;		 /* the first frame past all RAM */
static uint64_t random_state = 0x9e3779b97f4a7c15ULL;

static uint32_t next_random(void)
{
	/* xorshift64: junk page numbers, not cryptography. */
	random_state ^= random_state << 13;
	random_state ^= random_state >> 7;
	random_state ^= random_state << 17;
	return (uint32_t)(random_state >> 32);
}

static void stop(const char *why)
{
	putstr("hostile: ");
	putstr(why);
	putstr("\n");
	poweroff();
}

static uint32_t pci_read32(unsigned slot, unsigned reg)
{
	outl(PCI_CONFIG_ADDRESS, 0x80000000u | slot << 11 | (reg & 0xfc));
	return inl(PCI_CONFIG_DATA);
}

static void pci_write32(unsigned slot, unsigned reg, uint32_t v)
{
	outl(PCI_CONFIG_ADDRESS, 0x80000000u | slot << 11 | (reg & 0xfc));
	outl(PCI_CONFIG_DATA, v);
}

static uint8_t pci_read8(unsigned slot, unsigned reg)
{
	return (uint8_t)(pci_read32(slot, reg) >> (8 * (reg & 3)));
}

/* The address a BAR decodes, or 0 where the payload cannot reach it. */
static uint64_t bar_address(unsigned slot, unsigned bar)
{
	uint32_t lo = pci_read32(slot, PCI_BAR0 + 4 * bar);
	uint64_t addr = lo & ~0xfULL;

	if ((lo & 0x6) == 0x4 && bar < 5)
		addr |= (uint64_t)pci_read32(slot, PCI_BAR0 + 4 * (bar + 1)) << 32;
	return addr >= 0xc0000000ULL && addr < 0x100000000ULL ? addr : 0;
}

static int find_device(uint16_t device_id, struct virtio_device *d)
{
	unsigned cap, guard = 0;

	for (d->slot = 0; d->slot < PCI_SLOTS; d->slot++)
		if (pci_read32(d->slot, 0) == ((uint32_t)device_id << 16 | VIRTIO_VENDOR))
			break;
	if (d->slot == PCI_SLOTS)
		return -1;
	/* The VMM placed the BARs; decoding them and DMA are ours to turn on. */
	pci_write32(d->slot, PCI_COMMAND,
		    (pci_read32(d->slot, PCI_COMMAND) & 0xffff) | PCI_COMMAND_MEMORY |
			PCI_COMMAND_MASTER);
	if (!(pci_read32(d->slot, PCI_COMMAND) & PCI_STATUS_CAP_LIST))
		return -1;
	/* A list that loops or runs long is the device's error; 48 capabilities fill the space. */
	for (cap = pci_read8(d->slot, PCI_CAPABILITY_LIST) & 0xfc; cap && guard < 48;
	     cap = pci_read8(d->slot, cap + 1) & 0xfc, guard++) {
		uint8_t type = pci_read8(d->slot, cap + 3);
		uint64_t base;

		if (pci_read8(d->slot, cap) != PCI_CAP_ID_VNDR)
			continue;
		base = bar_address(d->slot, pci_read8(d->slot, cap + 4));
		if (!base)
			continue;
		base += pci_read32(d->slot, cap + 8);
		if (type == VIRTIO_PCI_CAP_COMMON_CFG) {
			d->common = (volatile uint8_t *)(uintptr_t)base;
		} else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
			d->notify_base = (volatile uint8_t *)(uintptr_t)base;
			d->notify_multiplier = pci_read32(d->slot, cap + 16);
		}
	}
	return d->common && d->notify_base ? 0 : -1;
}

/* Common configuration registers have fixed widths; the device ignores any other access. */
static void common_write8(struct virtio_device *d, unsigned off, uint8_t v)
{
	*(volatile uint8_t *)(d->common + off) = v;
}

static void common_write16(struct virtio_device *d, unsigned off, uint16_t v)
{
	*(volatile uint16_t *)(d->common + off) = v;
}

static void common_write32(struct virtio_device *d, unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(d->common + off) = v;
}

static uint8_t common_read8(struct virtio_device *d, unsigned off)
{
	return *(volatile uint8_t *)(d->common + off);
}

static uint16_t common_read16(struct virtio_device *d, unsigned off)
{
	return *(volatile uint16_t *)(d->common + off);
}

static uint32_t common_read32(struct virtio_device *d, unsigned off)
{
	return *(volatile uint32_t *)(d->common + off);
}

static void common_write64(struct virtio_device *d, unsigned off, uint64_t v)
{
	common_write32(d, off, (uint32_t)v);
	common_write32(d, off + 4, (uint32_t)(v >> 32));
}

/* Initialisation as virtio 1.2, 3.1.1 orders it; one queue. Returns 0 or -1. */
static int virtio_start(struct virtio_device *d, uint64_t want_features, unsigned queue_index,
			uint16_t want_size)
{
	struct queue *q = d->queue;
	uint64_t offered;
	uint8_t status = STATUS_ACKNOWLEDGE | STATUS_DRIVER;

	common_write8(d, COMMON_STATUS, 0);
	common_write8(d, COMMON_STATUS, STATUS_ACKNOWLEDGE);
	common_write8(d, COMMON_STATUS, status);
	common_write32(d, COMMON_DEVICE_FEATURE_SELECT, 1);
	offered = (uint64_t)common_read32(d, COMMON_DEVICE_FEATURE) << 32;
	common_write32(d, COMMON_DEVICE_FEATURE_SELECT, 0);
	offered |= common_read32(d, COMMON_DEVICE_FEATURE);
	if (!(offered & (1ULL << F_VERSION_1)))
		return -1;
	want_features &= offered;
	common_write32(d, COMMON_DRIVER_FEATURE_SELECT, 0);
	common_write32(d, COMMON_DRIVER_FEATURE, (uint32_t)want_features);
	common_write32(d, COMMON_DRIVER_FEATURE_SELECT, 1);
	common_write32(d, COMMON_DRIVER_FEATURE, (uint32_t)(want_features >> 32));
	status |= STATUS_FEATURES_OK;
	common_write8(d, COMMON_STATUS, status);
	if (!(common_read8(d, COMMON_STATUS) & STATUS_FEATURES_OK))
		return -1;

	common_write16(d, COMMON_QUEUE_SELECT, (uint16_t)queue_index);
	q->size = common_read16(d, COMMON_QUEUE_SIZE);
	if (q->size == 0)
		return -1;
	if (q->size > want_size) {
		q->size = want_size; /* a power of two, as the device requires */
		common_write16(d, COMMON_QUEUE_SIZE, q->size);
	}
	/* No interrupts: this driver never waits for one. */
	q->avail.flags = AVAIL_F_NO_INTERRUPT;
	common_write64(d, COMMON_QUEUE_DESC, (uintptr_t)q->desc);
	common_write64(d, COMMON_QUEUE_DRIVER, (uintptr_t)&q->avail);
	common_write64(d, COMMON_QUEUE_DEVICE, (uintptr_t)&q->used);
	q->notify =
	    (volatile uint16_t *)(d->notify_base +
				  common_read16(d, COMMON_QUEUE_NOTIFY_OFF) * d->notify_multiplier);
	common_write16(d, COMMON_QUEUE_ENABLE, 1);
	status |= STATUS_DRIVER_OK;
	common_write8(d, COMMON_STATUS, status);
	return common_read8(d, COMMON_STATUS) & STATUS_NEEDS_RESET ? -1 : 0;
}

static void notify(struct queue *q, unsigned queue_index)
{
	/* The device reads avail.idx when this write traps: the index must be in RAM by then. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*q->notify = (uint16_t)queue_index;
}

static struct virtio_device balloon = {.name = "balloon", .queue = &balloon_queue};
static struct virtio_device rng = {.name = "rng", .queue = &rng_queue};
static uint64_t flood_round, last_report;

/*
 * Says which round it is, about every second. With check_devices, also which
 * device asks for a reset: reading its status waits for the device, so the
 * refilling vCPU, which must never wait for the one in the notify, does not.
 */
static void report(bool check_devices)
{
	struct virtio_device *devs[] = {&balloon, &rng};

	if (rdtsc() - last_report < REPORT_TSC_TICKS)
		return;
	last_report = rdtsc();
	putstr("hostile: round ");
	putdec(flood_round);
	for (unsigned i = 0; check_devices && i < 2; i++)
		if (common_read8(devs[i], COMMON_STATUS) & STATUS_NEEDS_RESET) {
			putstr(" (");
			putstr(devs[i]->name);
			putstr(" needs reset)");
		}
	putstr("\n");
}

/*
 * The ring slot for one more buffer. A slot's descriptor may be reused once
 * the device has used as many buffers as were made available before it; until
 * then, kick again (the device serves during the kick, so this rarely spins).
 */
static struct virtq_desc *next_slot(struct queue *q, unsigned queue_index)
{
	while ((uint16_t)(q->next_avail - __atomic_load_n(&q->used.idx, __ATOMIC_ACQUIRE)) >=
	       q->size) {
		notify(q, queue_index);
		report(true);
		__asm__ volatile("pause");
	}
	return &q->desc[q->next_avail & (q->size - 1)];
}

static void publish(struct queue *q)
{
	uint16_t slot = q->next_avail & (q->size - 1);

	q->avail.ring[slot] = slot;
	q->next_avail++;
	/* Release: the descriptor and ring entry are written before the index that offers them. */
	__atomic_store_n(&q->avail.idx, q->next_avail, __ATOMIC_RELEASE);
}

/* Frame k of the payload's own region, every other page so that no two entries make one run. */
static uint32_t own_pfn(uint64_t k)
{
	uint64_t pages = flood_bytes >> PAGE_SHIFT;

	return (uint32_t)((flood_base >> PAGE_SHIFT) + (2 * k) % pages);
}

/* A frame that is no RAM of this domain. */
static uint32_t junk_pfn(uint64_t k)
{
	uint64_t r;

	switch (k % 4) {
	case 0:
		r = next_random();
		if (r < ram_end_pfn)
			r += ram_end_pfn;
		return r > 0xffffffffULL ? 0xffffffffu : (uint32_t)r;
	case 1:
		return (uint32_t)(ram_end_pfn + k / 4);
	case 2:
		return (uint32_t)(0xe0000 + (k / 4) % 0x1ec00); /* the PCI window and the APICs */
	default:
		return 0xffffffffu;
	}
}

static void write_pfn_list(unsigned entries, uint64_t phase)
{
	for (unsigned i = 0; i < entries; i++)
		pfn_list[i] = i & 1 ? junk_pfn(i / 2 + phase) : own_pfn(i / 2 + phase);
}

static uint64_t rng_buffer_address(uint64_t k)
{
	/* Spread over the region, so that what the balloon takes back is written again. */
	return flood_base + (k * 65536) % (flood_bytes - RNG_BUFFER_BYTES + 1) / 4096 * 4096;
}

static void flood_balloon(bool notify_each)
{
	for (unsigned i = 0; i < balloon_queue.size; i++) {
		struct virtq_desc *d = next_slot(&balloon_queue, QUEUE_BALLOON_INFLATE);

		*d = (struct virtq_desc){.addr = (uintptr_t)pfn_list, .len = PFN_LIST_ENTRIES * 4};
		publish(&balloon_queue);
		if (notify_each)
			notify(&balloon_queue, QUEUE_BALLOON_INFLATE);
	}
	notify(&balloon_queue, QUEUE_BALLOON_INFLATE);
}

static void flood_rng(bool notify_each)
{
	for (unsigned i = 0; i < rng_queue.size; i++) {
		struct virtq_desc *d = next_slot(&rng_queue, QUEUE_RNG_REQUEST);

		if (i & 1)
			*d = (struct virtq_desc){
			    .addr = rng_buffer_address(flood_round * rng_queue.size + i),
			    .len = RNG_BUFFER_BYTES,
			    .flags = DESC_F_WRITE};
		else
			*d = (struct virtq_desc){.addr = (uintptr_t)rng_indirect,
						 .len = sizeof(rng_indirect),
						 .flags = DESC_F_INDIRECT};
		publish(&rng_queue);
		if (notify_each)
			notify(&rng_queue, QUEUE_RNG_REQUEST);
	}
	notify(&rng_queue, QUEUE_RNG_REQUEST);
}

/* vCPU 1 in "refill" mode: the inflate ring is never empty for long. */
void ap_main(void)
{
	putstr("hostile: vCPU 1 refills the inflate ring\n");
	for (uint64_t added = 0;; added++) {
		struct virtq_desc *d;

		flood_round = added / balloon_queue.size + 1;
		while ((uint16_t)(balloon_queue.next_avail -
				  __atomic_load_n(&balloon_queue.used.idx, __ATOMIC_ACQUIRE)) >=
		       balloon_queue.size) {
			report(false);
			__asm__ volatile("pause");
		}
		d = &balloon_queue.desc[balloon_queue.next_avail & (balloon_queue.size - 1)];
		*d = (struct virtq_desc){.addr = (uintptr_t)pfn_list, .len = PFN_LIST_ENTRIES * 4};
		publish(&balloon_queue);
		report(false);
	}
}

static bool has_word(const char *s, const char *w)
{
	for (; s && *s; s++) {
		const char *a = s, *b = w;
		while (*a && *b && *a == *b)
			a++, b++;
		if (!*b)
			return true;
	}
	return false;
}

/* RAM from the start info's memory map: where the flood may write, and where RAM ends. */
static void find_ram(const struct hvm_start_info *si)
{
	const struct {
		uint64_t addr, size;
		uint32_t type, reserved;
	} *map = (const void *)(uintptr_t)si->memmap_paddr;
	uint64_t list = ((uintptr_t)payload_end + 4095) & ~4095ULL;
	uint64_t start = (list + PFN_LIST_ENTRIES * 4 + FLOOD_ALIGN - 1) & ~(FLOOD_ALIGN - 1);

	for (uint32_t i = 0; i < si->memmap_entries; i++) {
		uint64_t end = map[i].addr + map[i].size;

		if (map[i].type != 1)
			continue;
		if (end >> PAGE_SHIFT > ram_end_pfn)
			ram_end_pfn = end >> PAGE_SHIFT;
		/* The RAM the image was loaded into, above the image, below the 1 GiB mapped. */
		if (map[i].addr <= list && end > start) {
			pfn_list = (uint32_t *)(uintptr_t)list;
			flood_base = start;
			flood_bytes = (end < (1ULL << 30) ? end : (1ULL << 30)) - start;
		}
	}
	if (!pfn_list || flood_bytes < RNG_BUFFER_BYTES + 4 * MIB)
		stop("not enough RAM above the image for the flood (give the domain 64 MiB)");
}

void payload_main(const struct hvm_start_info *si)
{
	if (si->magic != 0x336ec578)
		stop("bad start info magic");
	find_ram(si);
	map_mmio_window();
	if (find_device(VIRTIO_DEVICE_BALLOON, &balloon) < 0)
		stop("no virtio-balloon (modern virtio-pci, 1af4:1045) found");
	if (find_device(VIRTIO_DEVICE_RNG, &rng) < 0)
		stop("no virtio-rng (modern virtio-pci, 1af4:1044) found");
	if (virtio_start(&balloon, 1ULL << F_VERSION_1, QUEUE_BALLOON_INFLATE, QUEUE_MAX) < 0)
		stop("the balloon refused its driver");
	if (virtio_start(&rng, (1ULL << F_VERSION_1) | (1ULL << F_INDIRECT_DESC), QUEUE_RNG_REQUEST,
			 QUEUE_MAX) < 0)
		stop("the rng refused its driver");

	for (unsigned k = 0; k < RNG_INDIRECT_ENTRIES; k++)
		rng_indirect[k] = (struct virtq_desc){
		    .addr = rng_buffer_address(k * 512),
		    .len = RNG_BUFFER_BYTES,
		    .flags = DESC_F_WRITE | (k + 1 < RNG_INDIRECT_ENTRIES ? DESC_F_NEXT : 0),
		    .next = (uint16_t)(k + 1)};
	write_pfn_list(PFN_LIST_ENTRIES, 0);

	putstr("hostile: balloon at 00:");
	putdec(balloon.slot);
	putstr(".0 (inflate queue of ");
	putdec(balloon_queue.size);
	putstr("), rng at 00:");
	putdec(rng.slot);
	putstr(".0 (queue of ");
	putdec(rng_queue.size);
	putstr("); flood region ");
	puthex(flood_base);
	putstr(" + ");
	putdec(flood_bytes >> 20);
	putstr(" MiB\nhostile: flooding\n");
	last_report = rdtsc() - REPORT_TSC_TICKS;
	if (has_word(si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : "",
		     "refill")) {
		start_ap(1);
		for (;;) {
			notify(&balloon_queue, QUEUE_BALLOON_INFLATE);
			flood_rng(false);
		}
	}
	for (flood_round = 1;; flood_round++) {
		bool notify_each = flood_round & 1;

		write_pfn_list(PFNS_REWRITTEN, flood_round * PFNS_REWRITTEN);
		flood_balloon(notify_each);
		flood_rng(notify_each);
		report(true);
	}
}
