#ifndef DOMUS_SERIAL_H
#define DOMUS_SERIAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_RX_FIFO 4096

struct vm;

/* An 8250/16550A UART. */
struct serial {
	pthread_mutex_t lock;
	struct vm *vm;
	unsigned irq;
	int out_fd;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	int thr_empty_pending; /* a THRE interrupt is owed to the driver */
	int irq_level;
	uint8_t rx[SERIAL_RX_FIFO];
	size_t rx_head, rx_count;
};

int serial_add(struct vm *vm, struct serial *s, uint16_t port, unsigned irq, int out_fd)
	__attribute__((warn_unused_result));
/* Feeds terminal input to the UART; returns how many bytes fit. */
size_t serial_input(struct serial *s, const void *buf, size_t len);

/* Register access, exposed for tests. */
uint8_t serial_read_reg(struct serial *s, unsigned reg);
void serial_write_reg(struct serial *s, unsigned reg, uint8_t v);

#endif
