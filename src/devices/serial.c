/*
 * The 8250/16550A UART that Linux's 8250 driver probes at COM1.  Output is
 * written straight to the terminal; the transmitter is always ready, so a
 * THR write completes at once and raises "THR empty" if the driver asked.
 */
#include "devices/serial.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "vmm/vm.h"

#define UART_RBR 0
#define UART_IER 1
#define UART_IIR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO_ENABLED 0xc0
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02

static uint8_t iir_of(struct serial *s)
{
	uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO_ENABLED : 0;

	if ((s->ier & IER_RDI) && s->rx_count)
		return IIR_RDI | fifo;
	if ((s->ier & IER_THRI) && s->thr_empty_pending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

/* ISA interrupts are edge-triggered: the line follows "an interrupt is pending". */
static void update_irq(struct serial *s)
{
	int level = !(iir_of(s) & IIR_NO_INT);

	if (level != s->irq_level) {
		s->irq_level = level;
		if (s->vm)
			vm_irq_line(s->vm, s->irq, level);
	}
}

static void rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_count == SERIAL_RX_FIFO)
		return;
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = c;
	s->rx_count++;
}

uint8_t serial_read_reg(struct serial *s, unsigned reg)
{
	uint8_t v = 0;

	if (s->lcr & LCR_DLAB && reg <= 1)
		return reg == 0 ? s->dll : s->dlm;
	switch (reg) {
	case UART_RBR:
		if (s->rx_count) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
			s->rx_count--;
		}
		break;
	case UART_IER: v = s->ier; break;
	case UART_IIR:
		v = iir_of(s);
		/* Reading IIR while it reports THR empty acknowledges that interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			s->thr_empty_pending = 0;
		break;
	case UART_LCR: v = s->lcr; break;
	case UART_MCR: v = s->mcr; break;
	case UART_LSR: v = LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0); break;
	case UART_MSR:
		if (s->mcr & MCR_LOOP) {
			/* Loopback: modem outputs appear on the inputs (the probe checks this). */
			v = (uint8_t)(((s->mcr & 0x02) << 3) | ((s->mcr & 0x01) << 5) |
				      ((s->mcr & 0x04) << 4) | ((s->mcr & 0x08) << 4));
		} else {
			v = 0xb0; /* DCD, DSR, CTS */
		}
		break;
	case UART_SCR: v = s->scr; break;
	}
	update_irq(s);
	return v;
}

void serial_write_reg(struct serial *s, unsigned reg, uint8_t v)
{
	if (s->lcr & LCR_DLAB && reg <= 1) {
		if (reg == 0)
			s->dll = v;
		else
			s->dlm = v;
		return;
	}
	switch (reg) {
	case UART_RBR:
		if (s->mcr & MCR_LOOP) {
			rx_push(s, v);
		} else if (s->out_fd >= 0) {
			ssize_t w;
			do
				w = write(s->out_fd, &v, 1);
			while (w < 0 && errno == EINTR);
		}
		s->thr_empty_pending = 1;
		break;
	case UART_IER:
		/* Enabling the THRE interrupt with an empty THR raises it at once. */
		if (!(s->ier & IER_THRI) && (v & IER_THRI))
			s->thr_empty_pending = 1;
		s->ier = v & 0x0f;
		break;
	case UART_IIR: /* FCR */
		s->fcr = v & 0xc9;
		if (v & FCR_CLEAR_RX)
			s->rx_count = 0;
		break;
	case UART_LCR: s->lcr = v; break;
	case UART_MCR: s->mcr = v & 0x1f; break;
	case UART_SCR: s->scr = v; break;
	default: break;
	}
	update_irq(s);
}

static void serial_pio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct serial *s = opaque;

	memset(data, 0, len);
	pthread_mutex_lock(&s->lock);
	*(uint8_t *)data = serial_read_reg(s, (unsigned)off);
	pthread_mutex_unlock(&s->lock);
}

static void serial_pio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	serial_write_reg(s, (unsigned)off, *(const uint8_t *)data);
	pthread_mutex_unlock(&s->lock);
}

static const struct bus_ops serial_ops = {.read = serial_pio_read, .write = serial_pio_write};

int serial_add(struct vm *vm, struct serial *s, uint16_t port, unsigned irq, int out_fd)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->vm = vm;
	s->irq = irq;
	s->out_fd = out_fd;
	s->mcr = 0x08; /* OUT2 */
	return vm ? bus_register(&vm->pio, port, 8, &serial_ops, s) : 0;
}

size_t serial_input(struct serial *s, const void *buf, size_t len)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = SERIAL_RX_FIFO - s->rx_count;
	if (len < n)
		n = len;
	for (size_t i = 0; i < n; i++)
		rx_push(s, ((const uint8_t *)buf)[i]);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}
