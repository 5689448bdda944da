/*
 * virtio-blk's multiqueue as the guest's driver meets it: the queue count
 * in the common configuration and in the device's config space, the MQ
 * feature only with more than one queue, an MSI-X vector per queue plus
 * one for config changes (and none beyond), queue registers and notifies
 * past the last queue ignored; and how many queues a vhost-user disk gets
 * from what is asked and what its back-end serves.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/vhost_user_blk.h"
#include "devices/virtio_blk.h"
#include "vmm/config.h"
#include "vmm/vm.h"

#define COMMON 0x0000
#define DEVICE 0x2000
#define NOTIFY 0x3000
#define MSIX_TABLE 0x4000
#define VIRTIO_BLK_F_MQ 12

/* A VM without KVM: a PCI bus for the device, nothing else. */
static struct {
	struct vm vm;
	struct pci_bus pci;
	struct virtio_blk blk;
	int image;
} rig;

static int setup(void **state)
{
	memset(&rig, 0, sizeof(rig));
	rig.vm.vm_fd = -1;
	rig.vm.pci = &rig.pci;
	if (pci_bus_init(&rig.pci, &rig.vm.pio, &rig.vm.mmio) < 0)
		return -1;
	rig.image = memfd_create("disk", MFD_CLOEXEC);
	return rig.image < 0 || ftruncate(rig.image, 1 << 20) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	close(rig.image);
	return 0;
}

static uint32_t rd(unsigned off, unsigned len)
{
	uint32_t v = 0;

	rig.blk.vdev.pdev.ops->bar_read(&rig.blk.vdev.pdev, 0, off, &v, len);
	return v;
}

static void wr(unsigned off, uint32_t v, unsigned len)
{
	rig.blk.vdev.pdev.ops->bar_write(&rig.blk.vdev.pdev, 0, off, &v, len);
}

static uint64_t device_features(void)
{
	wr(COMMON + 0x00, 0, 4);
	uint64_t lo = rd(COMMON + 0x04, 4);
	wr(COMMON + 0x00, 1, 4);
	return lo | (uint64_t)rd(COMMON + 0x04, 4) << 32;
}

/* The MSI-X capability's table size field, plus one: the vectors the driver may use. */
static unsigned msix_vectors(void)
{
	uint16_t ctrl;

	memcpy(&ctrl, rig.blk.vdev.pdev.config + rig.blk.vdev.msix_cap + 2, 2);
	return (ctrl & 0x7ff) + 1u;
}

static void test_four_queues(void **state)
{
	assert_int_equal(virtio_blk_add(&rig.vm, &rig.blk, rig.image, false, 0, 4), 0);
	assert_int_equal(rd(COMMON + 0x12, 2), 4);   /* num_queues */
	assert_int_equal(rd(DEVICE + 34, 2), 4);     /* virtio_blk_config.num_queues */
	assert_int_equal(rd(DEVICE + 0, 4), (1 << 20) / 512); /* capacity, low half */
	assert_true(device_features() & (1ULL << VIRTIO_BLK_F_MQ));
	assert_int_equal(msix_vectors(), 5);

	/* Every queue has its size and takes its vector; the fifth queue does not exist. */
	for (unsigned q = 0; q < 4; q++) {
		wr(COMMON + 0x16, q, 2);
		assert_int_equal(rd(COMMON + 0x18, 2), 256);
		wr(COMMON + 0x1a, q + 1, 2);
		assert_int_equal(rd(COMMON + 0x1a, 2), q + 1);
	}
	wr(COMMON + 0x16, 4, 2);
	assert_int_equal(rd(COMMON + 0x18, 2), 0);
	wr(COMMON + 0x1c, 1, 2); /* enable what is not there */
	assert_int_equal(rd(COMMON + 0x1c, 2), 0);
	/* Vector 5 is past the table: the queue and the config get none. */
	wr(COMMON + 0x16, 0, 2);
	wr(COMMON + 0x1a, 5, 2);
	assert_int_equal(rd(COMMON + 0x1a, 2), VIRTIO_NO_VECTOR);
	wr(COMMON + 0x10, 5, 2);
	assert_int_equal(rd(COMMON + 0x10, 2), VIRTIO_NO_VECTOR);
	wr(COMMON + 0x10, 0, 2);
	assert_int_equal(rd(COMMON + 0x10, 2), 0);
	/* MSI-X table entries past the last vector read as zero and take no writes. */
	wr(MSIX_TABLE + 16 * 5 + 8, 0x1234, 4);
	assert_int_equal(rd(MSIX_TABLE + 16 * 5 + 8, 4), 0);
	wr(MSIX_TABLE + 16 * 4 + 8, 0x1234, 4);
	assert_int_equal(rd(MSIX_TABLE + 16 * 4 + 8, 4), 0x1234);
	/* A notify of queue 4, 15 or 0xffff: nothing to serve, nothing breaks. */
	wr(NOTIFY + 4 * 4, 4, 2);
	wr(NOTIFY + 4 * 15, 15, 2);
	wr(NOTIFY + 0xffc, 0xffff, 2);
	assert_false(rig.blk.vdev.status & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_one_queue_is_plain(void **state)
{
	assert_int_equal(virtio_blk_add(&rig.vm, &rig.blk, rig.image, true, 0, 1), 0);
	assert_int_equal(rd(COMMON + 0x12, 2), 1);
	assert_false(device_features() & (1ULL << VIRTIO_BLK_F_MQ));
	assert_int_equal(msix_vectors(), 2);
}

static void test_queue_count_out_of_range(void **state)
{
	assert_int_equal(virtio_blk_add(&rig.vm, &rig.blk, rig.image, false, 0, 0), -EINVAL);
	assert_int_equal(virtio_blk_add(&rig.vm, &rig.blk, rig.image, false, 0,
					VM_MAX_DISK_QUEUES + 1), -EINVAL);
	assert_int_equal(rig.pci.ndevices, 1); /* the host bridge alone: nothing was added */
	assert_int_equal(virtio_blk_add(&rig.vm, &rig.blk, rig.image, false, 0, VM_MAX_DISK_QUEUES), 0);
	assert_int_equal(rd(COMMON + 0x12, 2), VM_MAX_DISK_QUEUES);
	assert_int_equal(msix_vectors(), VM_MAX_DISK_QUEUES + 1);
}

/* A disk's default: a queue per vCPU, 16 at most; queues= wins. */
static void test_disk_queue_count(void **state)
{
	struct disk_config d = {0};

	assert_int_equal(disk_queue_count(&d, 1), 1);
	assert_int_equal(disk_queue_count(&d, 2), 2);
	assert_int_equal(disk_queue_count(&d, 64), VM_MAX_DISK_QUEUES);
	assert_int_equal(disk_queue_count(&d, 0), 1);
	assert_int_equal(disk_queues_parse("1", &d), 0);
	assert_int_equal(disk_queue_count(&d, 8), 1);
	assert_int_equal(disk_queues_parse("16", &d), 0);
	assert_int_equal(disk_queue_count(&d, 2), 16);
	for (const char *bad[] = {"0", "17", "-1", "", "4x", " 4", "99999999999999999999", "+4"},
			**b = bad; b < bad + 8; b++)
		assert_int_equal(disk_queues_parse(*b, &d), -EINVAL);
	assert_int_equal(d.queues, 16); /* a refused value changes nothing */
}

/* A vhost-user disk's queues: what is asked, as far as its back-end goes. */
static void test_vhost_user_queue_count(void **state)
{
	const uint64_t mq = 1ULL << VIRTIO_BLK_F_MQ;

	assert_int_equal(vhost_user_blk_queue_count(4, mq, 16), 4);
	assert_int_equal(vhost_user_blk_queue_count(4, mq, 2), 2);   /* the back-end serves 2 */
	assert_int_equal(vhost_user_blk_queue_count(4, 0, 16), 1);   /* no MQ feature: one */
	assert_int_equal(vhost_user_blk_queue_count(4, mq, 0), 1);   /* a back-end that says 0 */
	assert_int_equal(vhost_user_blk_queue_count(0, mq, 16), 1);
	assert_int_equal(vhost_user_blk_queue_count(100, mq, 1000), VIRTIO_MAX_QUEUES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_four_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_queue_is_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_count_out_of_range, setup, teardown),
		cmocka_unit_test(test_disk_queue_count),
		cmocka_unit_test(test_vhost_user_queue_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
