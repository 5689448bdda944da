/* The ivshmem device's MSI-X vector 0 as an eventfd, through vfio-pci. */
#ifndef SHMCHAN_VFIO_H
#define SHMCHAN_VFIO_H

struct shmchan_vfio {
	int container, group, device;
	int eventfd; /* readable after a doorbell; read 8 bytes to take it */
};

/* Binds vfio-pci to the device at bdf, routes its MSI-X vector 0 to a new
 * eventfd: 0 or -errno, *err naming what failed. */
int shmchan_vfio_open(struct shmchan_vfio *v, const char *bdf, const char **err)
	__attribute__((warn_unused_result));
void shmchan_vfio_close(struct shmchan_vfio *v);

#endif
