/*
 * How a guest stops or restarts the domain: the FADT's sleep control and
 * reset registers, the i8042 reset line Linux falls back to, and pvpanic.
 * The POST-code port 0x80, which Linux writes as an I/O delay, is a sink.
 */
#include <string.h>

#include "devices/platform.h"
#include "vmm/acpi.h"
#include "vmm/vm.h"

static void acpi_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	memset(data, 0, len); /* sleep status: never "woken" */
}

static void acpi_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vm *vm = opaque;
	uint8_t v = *(const uint8_t *)data;

	if (off == ACPI_SLEEP_CONTROL_PORT - ACPI_SLEEP_CONTROL_PORT && (v & ACPI_SLP_EN) &&
	    ((v >> 2) & 7) == ACPI_S5_SLP_TYP)
		vm_request_stop(vm, VM_POWEROFF, "guest powered off");
	else if (off == ACPI_RESET_PORT - ACPI_SLEEP_CONTROL_PORT && v == ACPI_RESET_VALUE)
		vm_request_stop(vm, VM_REBOOT, "guest rebooted (ACPI reset)");
}

static void i8042_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	memset(data, 0, len); /* status: no data, input buffer empty */
}

static void i8042_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vm *vm = opaque;

	/* 0xfe on the command port pulses the CPU reset line. */
	if (off == 4 && *(const uint8_t *)data == 0xfe)
		vm_request_stop(vm, VM_REBOOT, "guest rebooted (keyboard controller reset)");
}

static void sink_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
}

static const struct bus_ops acpi_ops = {.read = acpi_read, .write = acpi_write};
static const struct bus_ops i8042_ops = {.read = i8042_read, .write = i8042_write};
static const struct bus_ops sink_ops = {.read = NULL, .write = sink_write};

int power_add(struct vm *vm)
{
	int ret;

	ret = bus_register(&vm->pio, ACPI_SLEEP_CONTROL_PORT, 3, &acpi_ops, vm);
	if (ret == 0)
		ret = bus_register(&vm->pio, 0x60, 5, &i8042_ops, vm);
	if (ret == 0)
		ret = bus_register(&vm->pio, 0x80, 1, &sink_ops, vm);
	return ret;
}

#define PVPANIC_PANICKED 1
#define PVPANIC_CRASH_LOADED 2

static void pvpanic_bar_read(struct pci_device *pdev, int bar, uint64_t off, void *data,
			     unsigned len)
{
	memset(data, 0, len);
	/* Offset 0 tells the driver which events we understand. */
	if (off == 0)
		*(uint8_t *)data = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
}

static void pvpanic_bar_write(struct pci_device *pdev, int bar, uint64_t off, const void *data,
			      unsigned len)
{
	struct pvpanic *p = pdev->opaque;

	if (off == 0 && (*(const uint8_t *)data & PVPANIC_PANICKED))
		vm_request_stop(p->vm, VM_PANIC, "guest kernel panicked (pvpanic)");
}

static const struct pci_device_ops pvpanic_ops = {
	.bar_read = pvpanic_bar_read,
	.bar_write = pvpanic_bar_write,
};

int pvpanic_add(struct vm *vm, struct pvpanic *p)
{
	memset(p, 0, sizeof(*p));
	p->vm = vm;
	p->pdev.ops = &pvpanic_ops;
	p->pdev.opaque = p;
	p->pdev.bars[0] = (struct pci_bar){.size = 4096, .is_64 = false};
	/* The PCI id Linux's pvpanic-pci driver binds to (the device QEMU defined). */
	return pci_device_add(vm->pci, &p->pdev, 0x1b36, 0x0011, 0x088000, 0x1af4, 0x1100);
}
