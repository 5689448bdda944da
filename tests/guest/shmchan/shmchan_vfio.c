/*
 * The ivshmem device's MSI-X doorbell as an eventfd, through vfio-pci: for
 * devices without INTx (QEMU's ivshmem-doorbell), in a guest with an IOMMU
 * (QEMU's intel-iommu and intel_iommu=on; the cloud kernel has no VFIO
 * no-IOMMU mode). The BARs are still mapped through sysfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "shmchan_vfio.h"

#define PCI_DEVICES "/sys/bus/pci/devices"
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MASTER 0x4
/* How long binding vfio-pci may take to give us the group's node. */
#define VFIO_BIND_TIMEOUT_MS 3000

static int write_attr(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* The last component of a sysfs link ("" when there is none). */
static int link_name(const char *path, char *name, size_t cap)
{
	char target[PATH_MAX];
	const char *base;
	ssize_t n = readlink(path, target, sizeof(target) - 1);

	if (n < 0) {
		name[0] = '\0';
		return errno == ENOENT ? 0 : -errno;
	}
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= cap)
		return -ENAMETOOLONG;
	strcpy(name, base);
	return 0;
}

static int bind_vfio_pci(const char *bdf, const char **err)
{
	char path[PATH_MAX], drv[64];
	int r;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver", bdf);
	r = link_name(path, drv, sizeof(drv));
	if (r) {
		*err = "cannot read the device's driver link";
		return r;
	}
	if (!strcmp(drv, "vfio-pci"))
		return 0;
	if (drv[0]) {
		/* uio_pci_generic from an earlier run: the device is ours. */
		if (strcmp(drv, "uio_pci_generic")) {
			*err = "the device is bound to another driver";
			return -EBUSY;
		}
		snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver/unbind", bdf);
		r = write_attr(path, bdf);
		if (r) {
			*err = "cannot unbind uio_pci_generic";
			return r;
		}
	}
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver_override", bdf);
	r = write_attr(path, "vfio-pci");
	if (!r)
		r = write_attr("/sys/bus/pci/drivers_probe", bdf);
	if (r) {
		*err = "binding vfio-pci failed (is it loaded?)";
		return r;
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_group(const char *bdf, const char **err)
{
	char path[PATH_MAX], group[32];
	int64_t deadline = now_ms() + VFIO_BIND_TIMEOUT_MS;
	struct timespec nap = {.tv_sec = 0, .tv_nsec = 10000000L};
	int fd;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/iommu_group", bdf);
	if (link_name(path, group, sizeof(group)) || !group[0]) {
		*err = "the device has no IOMMU group (no IOMMU: boot with intel_iommu=on behind one)";
		return -ENODEV;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%s", group);
	while ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
		if (now_ms() > deadline) {
			*err = "vfio-pci gave the device's group no /dev/vfio node";
			return -errno;
		}
		nanosleep(&nap, NULL);
	}
	return fd;
}

static int enable_bus_master(int device, const char **err)
{
	struct vfio_region_info cfg = {.argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX};
	uint16_t cmd;

	/* MSI-X messages are the device's writes: it must be a bus master. */
	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0 ||
	    pread(device, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2) {
		*err = "cannot read the device's command register through vfio";
		return -errno;
	}
	cmd |= PCI_COMMAND_MASTER;
	if (pwrite(device, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2) {
		*err = "cannot make the device a bus master through vfio";
		return -errno;
	}
	return 0;
}

static int set_msix_eventfd(int device, int efd, const char **err)
{
	char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
	struct vfio_irq_info info = {.argsz = sizeof(info), .index = VFIO_PCI_MSIX_IRQ_INDEX};
	int32_t fd = efd;

	if (ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0 || info.count < 1) {
		*err = "the device has no MSI-X vector";
		return -ENODEV;
	}
	*set = (struct vfio_irq_set){.argsz = sizeof(buf),
				     .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				     .index = VFIO_PCI_MSIX_IRQ_INDEX,
				     .start = 0,
				     .count = 1};
	memcpy(set->data, &fd, sizeof(fd));
	if (ioctl(device, VFIO_DEVICE_SET_IRQS, set) < 0) {
		*err = "cannot route MSI-X vector 0 to an eventfd";
		return -errno;
	}
	return 0;
}

int shmchan_vfio_open(struct shmchan_vfio *v, const char *bdf, const char **err)
{
	struct vfio_group_status status = {.argsz = sizeof(status)};
	int r;

	*v = (struct shmchan_vfio){.container = -1, .group = -1, .device = -1, .eventfd = -1};
	r = bind_vfio_pci(bdf, err);
	if (r)
		return r;
	v->group = open_group(bdf, err);
	if (v->group < 0) {
		r = v->group;
		goto fail;
	}
	v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (v->container < 0) {
		*err = "cannot open /dev/vfio/vfio";
		r = -errno;
		goto fail;
	}
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) <= 0) {
		*err = "vfio has no type 1 IOMMU (is vfio_iommu_type1 loaded?)";
		r = -ENODEV;
		goto fail;
	}
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &status) < 0 ||
	    !(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		*err = "the device's IOMMU group is not viable (other devices in it?)";
		r = -EBUSY;
		goto fail;
	}
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) < 0) {
		*err = "cannot put the group in a vfio container";
		r = -errno;
		goto fail;
	}
	if (ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0) {
		r = -errno;
		*err = r == -EPERM ? "no interrupt remapping: vfio_iommu_type1 needs "
				     "allow_unsafe_interrupts=Y"
				   : "cannot set the vfio IOMMU type";
		goto fail;
	}
	v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (v->device < 0) {
		*err = "cannot get the device from its vfio group";
		r = -errno;
		goto fail;
	}
	r = enable_bus_master(v->device, err);
	if (r)
		goto fail;
	v->eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->eventfd < 0) {
		*err = "cannot make an eventfd";
		r = -errno;
		goto fail;
	}
	r = set_msix_eventfd(v->device, v->eventfd, err);
	if (r)
		goto fail;
	return 0;
fail:
	shmchan_vfio_close(v);
	return r;
}

void shmchan_vfio_close(struct shmchan_vfio *v)
{
	int *fds[] = {&v->eventfd, &v->device, &v->group, &v->container};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}
