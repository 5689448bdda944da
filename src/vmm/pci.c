#include "vmm/pci.h"

#include <errno.h>
#include <string.h>

#include "lib/log.h"

/*
 * INTx state (the status bit, the command's Interrupt Disable, the shared
 * lines' counts) changes from vCPU threads (config writes) and device
 * threads (pci_set_intx) alike. One lock, the innermost: nothing is taken
 * under it but the interrupt controller's ioctl.
 */
static pthread_mutex_t intx_lock = PTHREAD_MUTEX_INITIALIZER;

static uint16_t cfg16(const struct pci_device *p, unsigned off)
{
	uint16_t v;
	memcpy(&v, p->config + off, 2);
	return v;
}

static void set_cfg16(struct pci_device *p, unsigned off, uint16_t v)
{
	memcpy(p->config + off, &v, 2);
}

static void set_cfg32(struct pci_device *p, unsigned off, uint32_t v)
{
	memcpy(p->config + off, &v, 4);
}

uint64_t pci_bar_address(const struct pci_device *pdev, int bar)
{
	uint32_t lo, hi = 0;

	memcpy(&lo, pdev->config + PCI_BAR0 + 4 * bar, 4);
	if (pdev->bars[bar].is_64)
		memcpy(&hi, pdev->config + PCI_BAR0 + 4 * (bar + 1), 4);
	return ((uint64_t)hi << 32) | (lo & ~0xfULL);
}

uint32_t pci_config_read(struct pci_device *pdev, unsigned offset, unsigned len)
{
	uint32_t v = 0;

	if (offset >= 256 || len > 256 - offset)
		return 0xffffffff;
	pthread_mutex_lock(&intx_lock);
	memcpy(&v, pdev->config + offset, len);
	pthread_mutex_unlock(&intx_lock);
	return v;
}

unsigned pci_intx_gsi(unsigned slot, unsigned pin)
{
	return PCI_INTX_GSI_BASE + (slot + pin - 1) % PCI_INTX_GSIS;
}

/* Raises or lowers the function's share of its GSI to match its request. intx_lock held. */
static void intx_update(struct pci_device *pdev)
{
	struct pci_bus *pci = pdev->bus;
	bool want = pdev->intx_level && !(cfg16(pdev, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE);
	unsigned gsi, *count;

	if (!pdev->intx || !pci || want == pdev->intx_raised)
		return;
	gsi = pci_intx_gsi(pdev->slot, 1);
	count = &pci->intx_count[gsi - PCI_INTX_GSI_BASE];
	pdev->intx_raised = want;
	if (want ? (*count)++ == 0 : --(*count) == 0) {
		if (pci->set_irq)
			pci->set_irq(pci->irq_opaque, gsi, want ? 1 : 0);
	}
}

void pci_set_intx(struct pci_device *pdev, bool level)
{
	uint16_t status;

	pthread_mutex_lock(&intx_lock);
	pdev->intx_level = level;
	status = cfg16(pdev, PCI_STATUS);
	status = level ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT;
	set_cfg16(pdev, PCI_STATUS, status);
	intx_update(pdev);
	pthread_mutex_unlock(&intx_lock);
}

/* Which BAR register (0..5) a config offset falls in, or -1. */
static int bar_of(unsigned off)
{
	if (off < PCI_BAR0 || off >= PCI_BAR0 + 4 * PCI_NUM_BARS)
		return -1;
	return (int)(off - PCI_BAR0) / 4;
}

static void bar_write(struct pci_device *pdev, int reg, uint32_t value)
{
	/* The upper half of a 64-bit BAR holds the high address bits. */
	if (reg > 0 && pdev->bars[reg - 1].is_64 && pdev->bars[reg - 1].size) {
		uint64_t mask = ~(pdev->bars[reg - 1].size - 1);
		set_cfg32(pdev, PCI_BAR0 + 4 * reg, value & (uint32_t)(mask >> 32));
		return;
	}
	if (!pdev->bars[reg].size) {
		set_cfg32(pdev, PCI_BAR0 + 4 * reg, 0);
		return;
	}
	{
		uint32_t flags = (pdev->bars[reg].is_64 ? 0x4 : 0x0) | (pdev->bars[reg].prefetchable ? 0x8 : 0);
		uint32_t mask = (uint32_t)~(pdev->bars[reg].size - 1);
		set_cfg32(pdev, PCI_BAR0 + 4 * reg, (value & mask) | flags);
	}
}

static void bar_mmio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_bar_map *m = opaque;

	if (m->pdev->ops->bar_read)
		m->pdev->ops->bar_read(m->pdev, m->bar, off, data, len);
	else
		memset(data, 0xff, len);
}

static void bar_mmio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_bar_map *m = opaque;

	if (m->pdev->ops->bar_write)
		m->pdev->ops->bar_write(m->pdev, m->bar, off, data, len);
}

static const struct bus_ops bar_mmio_ops = {.read = bar_mmio_read, .write = bar_mmio_write};

/*
 * Registers every memory BAR where it decodes now, and nowhere else: after
 * a write to a BAR or to the command register. A BAR outside the PCI
 * window, or over another device's, decodes nothing (a guest sizing BARs
 * with decoding on makes such overlaps for a moment).
 */
static void update_bar_maps(struct pci_device *pdev)
{
	struct pci_bus *pci = pdev->bus;
	bool decode = cfg16(pdev, PCI_COMMAND) & PCI_COMMAND_MEMORY;

	if (!pci || !pci->mmio)
		return;
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar_map *m = &pdev->maps[i];
		uint64_t size = pdev->bars[i].size, want = 0;

		if (!size)
			continue;
		if (decode) {
			want = pci_bar_address(pdev, i);
			if (want < PCI_MMIO_BASE || want - PCI_MMIO_BASE > PCI_MMIO_SIZE - size)
				want = 0;
		}
		if (want == m->mapped_at)
			continue;
		if (m->mapped_at && bus_unregister(pci->mmio, m->mapped_at, m) < 0)
			log_warnx("pci: slot %u BAR %d was not registered at 0x%llx", pdev->slot, i,
				  (unsigned long long)m->mapped_at);
		m->mapped_at = 0;
		m->pdev = pdev;
		m->bar = i;
		if (want && bus_register(pci->mmio, want, size, &bar_mmio_ops, m) < 0) {
			log_debug("pci: slot %u BAR %d at 0x%llx overlaps another; it decodes nothing",
				  pdev->slot, i, (unsigned long long)want);
			want = 0;
		}
		m->mapped_at = want;
	}
}

void pci_config_write(struct pci_device *pdev, unsigned offset, unsigned len, uint32_t value)
{
	uint8_t bytes[4];
	bool dev_bits = false, command = false;

	if (offset >= 256 || len > 256 - offset || (len != 1 && len != 2 && len != 4))
		return;
	if (bar_of(offset) >= 0) {
		/* Sizing and programming use whole 32-bit accesses; ignore partial ones. */
		if (len == 4 && (offset & 3) == 0) {
			pthread_mutex_lock(&intx_lock);
			bar_write(pdev, bar_of(offset), value);
			pthread_mutex_unlock(&intx_lock);
			update_bar_maps(pdev);
			if (pdev->ops->bars_changed)
				pdev->ops->bars_changed(pdev);
		}
		return;
	}
	memcpy(bytes, &value, 4);
	pthread_mutex_lock(&intx_lock);
	for (unsigned i = 0; i < len; i++) {
		unsigned o = offset + i;
		uint8_t mask;

		if (o == PCI_COMMAND)
			mask = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
		else if (o == PCI_COMMAND + 1)
			mask = PCI_COMMAND_INTX_DISABLE >> 8;
		else if (o == PCI_INTERRUPT_LINE)
			mask = 0xff; /* the OS's note of where INTx goes; read/write for every function */
		else {
			mask = pdev->wmask[o];
			dev_bits |= mask != 0;
		}
		command |= o == PCI_COMMAND || o == PCI_COMMAND + 1;
		pdev->config[o] = (uint8_t)((pdev->config[o] & ~mask) | (bytes[i] & mask));
	}
	if (command)
		intx_update(pdev); /* Interrupt Disable may have changed */
	pthread_mutex_unlock(&intx_lock);
	if (command)
		update_bar_maps(pdev);
	if (command && pdev->ops->bars_changed)
		pdev->ops->bars_changed(pdev); /* memory decoding may have changed */
	if (dev_bits && pdev->ops->config_written)
		pdev->ops->config_written(pdev, offset, len);
}

unsigned pci_add_capability(struct pci_device *pdev, const void *cap, unsigned len)
{
	/* Capabilities are packed upwards from 0x40, dword aligned, linked in order. */
	unsigned at = pdev->cap_next ? pdev->cap_next : 0x40;
	unsigned link = pdev->cap_last ? pdev->cap_last + 1 : PCI_CAPABILITY_LIST;

	at = (at + 3) & ~3u;
	if (len < 2 || at + len > 256)
		return 0;
	memcpy(pdev->config + at, cap, len);
	pdev->config[at + 1] = 0;
	pdev->config[link] = (uint8_t)at;
	pdev->cap_last = at;
	pdev->cap_next = at + len;
	set_cfg16(pdev, PCI_STATUS, cfg16(pdev, PCI_STATUS) | PCI_STATUS_CAP_LIST);
	return at;
}

int pci_device_add(struct pci_bus *pci, struct pci_device *pdev, uint16_t vendor, uint16_t device,
		   uint32_t class_code, uint16_t subsys_vendor, uint16_t subsys_id)
{
	if (pci->ndevices == PCI_MAX_DEVICES)
		return -ENOSPC;
	set_cfg16(pdev, PCI_VENDOR_ID, vendor);
	set_cfg16(pdev, PCI_VENDOR_ID + 2, device);
	pdev->config[PCI_CLASS_PROG] = class_code & 0xff;
	pdev->config[PCI_CLASS_PROG + 1] = (class_code >> 8) & 0xff;
	pdev->config[PCI_CLASS_PROG + 2] = (class_code >> 16) & 0xff;
	pdev->config[PCI_HEADER_TYPE] = 0;
	set_cfg16(pdev, PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor);
	set_cfg16(pdev, PCI_SUBSYSTEM_ID, subsys_id);
	/* MSI-X-only functions (virtio) have no pin; the _PRT routes the others' pin A. */
	pdev->config[PCI_INTERRUPT_PIN] = pdev->intx ? 1 : 0;
	pdev->bus = pci;
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t size = pdev->bars[i].size, addr;
		if (!size)
			continue;
		if (size < 4096 || (size & (size - 1)))
			return -EINVAL;
		addr = (pci->next_mmio + size - 1) & ~(size - 1);
		if (addr + size > PCI_MMIO_BASE + PCI_MMIO_SIZE)
			return -ENOSPC;
		pci->next_mmio = addr + size;
		set_cfg32(pdev, PCI_BAR0 + 4 * i, (uint32_t)addr | (pdev->bars[i].is_64 ? 0x4 : 0) |
						     (pdev->bars[i].prefetchable ? 0x8 : 0));
		if (pdev->bars[i].is_64) {
			set_cfg32(pdev, PCI_BAR0 + 4 * (i + 1), (uint32_t)(addr >> 32));
			i++;
		}
	}
	pdev->slot = pci->ndevices;
	pci->devices[pci->ndevices++] = pdev;
	return 0;
}

static struct pci_device *addressed_device(struct pci_bus *pci, unsigned *reg)
{
	uint32_t a = pci->config_address;
	unsigned bus = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;

	if (!(a & 0x80000000) || bus != 0 || fn != 0 || slot >= pci->ndevices)
		return NULL;
	*reg = a & 0xfc;
	return pci->devices[slot];
}

static void pci_pio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_bus *pci = opaque;
	struct pci_device *pdev;
	unsigned reg;
	uint32_t v = 0xffffffff;

	pthread_mutex_lock(&pci->lock);
	if (off == 0 && len == 4) {
		v = pci->config_address;
	} else if (off >= 4) {
		pdev = addressed_device(pci, &reg);
		if (pdev)
			v = pci_config_read(pdev, reg + (unsigned)(off - 4), len);
	}
	pthread_mutex_unlock(&pci->lock);
	memcpy(data, &v, len);
}

static void pci_pio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_bus *pci = opaque;
	struct pci_device *pdev;
	unsigned reg;
	uint32_t v = 0;

	memcpy(&v, data, len);
	pthread_mutex_lock(&pci->lock);
	if (off == 0 && len == 4) {
		pci->config_address = v;
	} else if (off >= 4) {
		pdev = addressed_device(pci, &reg);
		if (pdev)
			pci_config_write(pdev, reg + (unsigned)(off - 4), len, v);
	}
	pthread_mutex_unlock(&pci->lock);
}

static const struct pci_device_ops host_bridge_ops = {0};

static const struct bus_ops pci_pio_ops = {.read = pci_pio_read, .write = pci_pio_write};

int pci_bus_init(struct pci_bus *pci, struct bus *pio, struct bus *mmio)
{
	int ret;

	memset(pci, 0, sizeof(*pci));
	pthread_mutex_init(&pci->lock, NULL);
	pci->next_mmio = PCI_MMIO_BASE;
	ret = bus_register(pio, 0xcf8, 8, &pci_pio_ops, pci);
	if (ret < 0)
		return ret;
	pci->mmio = mmio;
	/*
	 * Slot 0 is a host bridge: Linux trusts configuration mechanism #1 only
	 * once it finds a host bridge (or an Intel device) on bus 0. The id is
	 * the generic PCIe host bridge one that QEMU's gpex also uses.
	 */
	pci->host_bridge.ops = &host_bridge_ops;
	return pci_device_add(pci, &pci->host_bridge, 0x1b36, 0x0008, 0x060000, 0x1b36, 0x0008);
}
