#ifndef DOMUS_VIRTIO_RNG_H
#define DOMUS_VIRTIO_RNG_H

#include "devices/virtio_pci.h"

int virtio_rng_add(struct vm *vm, struct virtio_dev *vd) __attribute__((warn_unused_result));

#endif
