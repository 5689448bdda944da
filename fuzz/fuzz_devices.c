/*
 * The VMM's devices as a hostile guest meets them, without KVM: the input
 * is a sequence of port I/O, PCI configuration accesses (through
 * 0xcf8/0xcfc, the one configuration mechanism the VMM has), reads and
 * writes in and around the devices' BARs, writes to the guest memory that
 * holds the virtio rings and buffers, and the host's own calls (console
 * input, balloon target and statistics). The devices are those vm.c adds
 * that need no host file or back-end, in the same order: host bridge,
 * 8250, RTC, power ports, virtio-rng, virtio-console, pvpanic,
 * virtio-balloon; and a virtio-blk of 4 queues (multiqueue: registers,
 * vectors and notifies per queue) on a 1 MiB memfd. With no VM fd, MSIs and interrupt lines go nowhere. No
 * access may touch memory outside the guest buffer, crash, or hang.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/platform.h"
#include "devices/serial.h"
#include "devices/virtio_balloon.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_console.h"
#include "devices/virtio_rng.h"
#include "vmm/acpi.h"
#include "vmm/pci.h"
#include "vmm/vm.h"

#include "fuzz_input.h"

#define MEM 65536

/*
 * The first input byte: memory decoding and bus mastering already on, as a
 * driver's probe turns them on, so the sequence need not find those writes
 * before it reaches any BAR.
 */
#define SETUP_DECODE 0x01

enum op {
	OP_PORT_READ,
	OP_PORT_WRITE,
	OP_CONFIG_READ,
	OP_CONFIG_WRITE,
	OP_BAR_READ,
	OP_BAR_WRITE,
	OP_MEM_WRITE,
	OP_CONSOLE_INPUT,
	OP_BALLOON_TARGET,
	OP_BALLOON_STATS,
	OP_COUNT,
};

/* PCI configuration, COM1, RTC, ACPI, i8042, POST code; an access lands up to 7 bytes past one. */
static const uint16_t port_bases[] = {0xcf8, SERIAL_COM1_PORT, 0x70, ACPI_SLEEP_CONTROL_PORT,
				       0x60, 0x80};

/* The devices as vm.c's struct domain holds them. */
static struct {
	struct vm vm;
	struct pci_bus pci;
	struct serial serial;
	struct rtc rtc;
	struct virtio_dev rng;
	struct virtio_console console;
	struct pvpanic pvpanic;
	struct virtio_balloon balloon;
	struct virtio_blk blk;
	int blk_fd;
} dom;

static time_t fixed_now(void)
{
	return 1700000000; /* the RTC reads the same clock at every run, so a crash reproduces */
}

static int build_devices(void)
{
	struct vm *vm = &dom.vm;
	int ret;

	memset(&dom, 0, sizeof(dom));
	memset(fuzz_guest_ram(MEM), 0, MEM);
	gmem_wrap(&vm->mem, fuzz_guest_ram(MEM), MEM);
	vm->kvm_fd = -1;
	vm->vm_fd = -1;
	vm->stop_eventfd = fuzz_sink_fd();
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->pci = &dom.pci;
	vm->serial = &dom.serial;
	vm->vcon = &dom.console;
	if ((ret = pci_bus_init(&dom.pci, &vm->pio, &vm->mmio)) < 0 ||
	    (ret = serial_add(vm, &dom.serial, SERIAL_COM1_PORT, SERIAL_COM1_IRQ,
			      fuzz_sink_fd())) < 0 ||
	    (ret = rtc_add(vm, &dom.rtc)) < 0 || (ret = power_add(vm)) < 0 ||
	    (ret = virtio_rng_add(vm, &dom.rng)) < 0 ||
	    (ret = virtio_console_add(vm, &dom.console, fuzz_sink_fd())) < 0 ||
	    (ret = pvpanic_add(vm, &dom.pvpanic)) < 0)
		return ret;
	vm->balloon = &dom.balloon;
	if ((ret = virtio_balloon_add(vm, &dom.balloon, true, MEM)) < 0)
		return ret;
	dom.rtc.now = fixed_now;
	dom.blk_fd = memfd_create("disk", MFD_CLOEXEC);
	if (dom.blk_fd < 0 || ftruncate(dom.blk_fd, 1 << 20) < 0)
		return -errno;
	return virtio_blk_add(vm, &dom.blk, dom.blk_fd, false, 0, 4);
}

static void destroy_devices(void)
{
	virtio_balloon_destroy(&dom.balloon);
	if (dom.blk_fd >= 0)
		close(dom.blk_fd);
	pthread_mutex_destroy(&dom.vm.pause_lock);
	pthread_cond_destroy(&dom.vm.pause_cond);
}

/* A memory BAR's device: every PCI device but the host bridge, by index. */
static struct pci_device *bar_device(uint8_t which)
{
	unsigned n = dom.pci.ndevices - 1;

	return dom.pci.devices[1 + which % n];
}

static void port_access(struct fuzz_input *in, bool write)
{
	uint8_t sel = (uint8_t)fuzz_take(in, 1);
	unsigned n = sizeof(port_bases) / sizeof(port_bases[0]);
	uint16_t port = (uint16_t)(port_bases[sel % n] + (sel / n) % 8);
	unsigned len = 1u << (fuzz_take(in, 1) % 3);
	uint32_t v = write ? (uint32_t)fuzz_take(in, 4) : 0;

	bus_dispatch(&dom.vm.pio, port, &v, len, write);
}

/* A configuration access as a driver makes one: the address to 0xcf8, the data at 0xcfc-0xcff. */
static void config_access(struct fuzz_input *in, bool write)
{
	uint8_t slot = (uint8_t)fuzz_take(in, 1), reg = (uint8_t)fuzz_take(in, 1);
	uint32_t address = 0x80000000u | (uint32_t)(slot & 0x1f) << 11 | (reg & 0xfcu);
	unsigned len = 1u << (fuzz_take(in, 1) % 3);
	uint32_t v = write ? (uint32_t)fuzz_take(in, 4) : 0;

	bus_dispatch(&dom.vm.pio, 0xcf8, &address, 4, true);
	bus_dispatch(&dom.vm.pio, 0xcfc + (reg & 3u), &v, len, write);
}

/* An access of 1, 2, 4 or 8 bytes from 4 KiB below a device's BAR 0 to 4 KiB past its end. */
static void bar_access(struct fuzz_input *in, bool write)
{
	struct pci_device *pdev = bar_device((uint8_t)fuzz_take(in, 1));
	uint64_t span = pdev->bars[0].size + 0x2000;
	uint64_t addr = pci_bar_address(pdev, 0) - 0x1000 + fuzz_take(in, 2) % span;
	unsigned len = 1u << (fuzz_take(in, 1) % 4);
	uint64_t v = write ? fuzz_take(in, 8) : 0;

	bus_dispatch(&dom.vm.mmio, addr, &v, len, write);
}

static void console_input(struct fuzz_input *in)
{
	size_t len;
	const uint8_t *bytes = fuzz_take_bytes(in, fuzz_take(in, 1), &len);

	serial_input(&dom.serial, bytes, len);
	virtio_console_input(&dom.console, bytes, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = {data, size};
	uint8_t setup;

	if (size < 1)
		return 0;
	if (build_devices() < 0)
		abort(); /* the same device set as every other run: a bug here, not an input */
	setup = (uint8_t)fuzz_take(&in, 1);
	if (setup & SETUP_DECODE) {
		for (unsigned d = 0; d < dom.pci.ndevices; d++)
			pci_config_write(dom.pci.devices[d], PCI_COMMAND, 2,
					 PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	}
	while (in.left) {
		switch ((enum op)(fuzz_take(&in, 1) % OP_COUNT)) {
		case OP_PORT_READ: port_access(&in, false); break;
		case OP_PORT_WRITE: port_access(&in, true); break;
		case OP_CONFIG_READ: config_access(&in, false); break;
		case OP_CONFIG_WRITE: config_access(&in, true); break;
		case OP_BAR_READ: bar_access(&in, false); break;
		case OP_BAR_WRITE: bar_access(&in, true); break;
		case OP_MEM_WRITE: fuzz_poke(&in, fuzz_guest_ram(MEM), MEM); break;
		case OP_CONSOLE_INPUT: console_input(&in); break;
		case OP_BALLOON_TARGET:
			(void)virtio_balloon_set_target(&dom.balloon, fuzz_take(&in, 4) << 12);
			break;
		case OP_BALLOON_STATS: virtio_balloon_request_stats(&dom.balloon); break;
		case OP_COUNT: break;
		}
	}
	destroy_devices();
	return 0;
}
