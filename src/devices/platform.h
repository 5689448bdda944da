/*
 * The small fixed-function platform devices: the CMOS clock, the ACPI
 * sleep and reset registers, the i8042's reset line, and the pvpanic PCI
 * device through which a Linux guest reports a panic.
 */
#ifndef DOMUS_PLATFORM_H
#define DOMUS_PLATFORM_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "vmm/pci.h"

struct vm;

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[128];
	time_t (*now)(void); /* injectable for tests */
};

int rtc_add(struct vm *vm, struct rtc *rtc) __attribute__((warn_unused_result));
uint8_t rtc_read(struct rtc *rtc, uint8_t reg);

int power_add(struct vm *vm) __attribute__((warn_unused_result));

struct pvpanic {
	struct pci_device pdev;
	struct vm *vm;
};

int pvpanic_add(struct vm *vm, struct pvpanic *p) __attribute__((warn_unused_result));

#endif
