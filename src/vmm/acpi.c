#include "vmm/acpi.h"

#include <errno.h>
#include <string.h>

#include "vmm/aml.h"
#include "vmm/pci.h"

struct __attribute__((packed)) acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
};

struct __attribute__((packed)) acpi_gas {
	uint8_t space_id; /* 1 = system I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size; /* 1 = byte */
	uint64_t address;
};

struct __attribute__((packed)) acpi_rsdp {
	char signature[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum;
	uint8_t reserved[3];
};

/* FADT of ACPI 6.x (276 bytes); only the fields a hardware-reduced platform uses are set. */
struct __attribute__((packed)) acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint8_t pad0[108 - 48];
	uint8_t century;            /* 108 */
	uint16_t iapc_boot_arch;    /* 109 */
	uint8_t reserved1;
	uint32_t flags;             /* 112 */
	struct acpi_gas reset_reg;  /* 116 */
	uint8_t reset_value;        /* 128 */
	uint16_t arm_boot_arch;
	uint8_t minor_version;      /* 131 */
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;            /* 140 */
	uint8_t pad1[244 - 148];
	struct acpi_gas sleep_control; /* 244 */
	struct acpi_gas sleep_status;  /* 256 */
	uint64_t hypervisor_vendor;    /* 268 */
};

_Static_assert(sizeof(struct acpi_header) == 36, "acpi header");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "rsdp");
_Static_assert(sizeof(struct acpi_fadt) == 276, "fadt");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "fadt flags");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "fadt x_dsdt");
_Static_assert(offsetof(struct acpi_fadt, sleep_control) == 244, "fadt sleep control");

#define FADT_WBINVD (1u << 0)
#define FADT_PWR_BUTTON (1u << 4) /* no fixed-feature power button */
#define FADT_SLP_BUTTON (1u << 5)
#define FADT_RESET_REG_SUP (1u << 10)
#define FADT_HW_REDUCED_ACPI (1u << 20)
#define IAPC_NO_VGA (1u << 2)

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return sum;
}

static void header_init(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, "DOMUS ", 6);
	memcpy(h->oem_table_id, "DOMUSVM ", 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "DOMU", 4);
	h->creator_revision = 1;
}

/* Places a finished table at *off (8-byte aligned), fixing its checksum. */
static long put_table(uint8_t *buf, size_t size, size_t *off, const void *table, size_t len)
{
	size_t at = (*off + 7) & ~(size_t)7;
	struct acpi_header *h;

	if (at > size || len > size - at)
		return -ENOSPC;
	memcpy(buf + at, table, len);
	h = (struct acpi_header *)(buf + at);
	h->checksum = 0;
	h->checksum = (uint8_t)-acpi_checksum(buf + at, len);
	*off = at + len;
	return (long)at;
}

static void put_word_space(struct aml *r, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	uint8_t d[16] = {0x88, 13, 0, type, 0x0c, tflags};
	uint16_t v[5] = {0, min, max, 0, (uint16_t)(max - min + 1)};

	memcpy(d + 6, v, sizeof(v));
	aml_bytes(r, d, sizeof(d));
}

static void put_dword_memory(struct aml *r, uint32_t min, uint32_t max)
{
	uint8_t d[26] = {0x87, 23, 0, 0 /* memory */, 0x0c, 0x01 /* read-write */};
	uint32_t v[5] = {0, min, max, 0, max - min + 1};

	memcpy(d + 6, v, sizeof(v));
	aml_bytes(r, d, sizeof(d));
}

/* Device(name) { _HID, _UID, _CRS: IO(port, len) and, if irq >= 0, IRQNoFlags(irq) }. */
static void add_isa_device(struct aml *scope, const char *name, const char *hid, uint16_t port,
			   uint8_t len, int irq)
{
	struct aml body, crs, crsbuf;
	uint8_t io[8] = {0x47, 0x01, (uint8_t)port, (uint8_t)(port >> 8), (uint8_t)port,
			 (uint8_t)(port >> 8), 0x01, len};
	static const uint8_t end_tag[] = {0x79, 0x00};

	aml_init(&body);
	aml_init(&crs);
	aml_init(&crsbuf);
	aml_bytes(&crs, io, sizeof(io));
	if (irq >= 0) {
		uint16_t mask = (uint16_t)(1u << irq);
		uint8_t d[3] = {0x22, (uint8_t)mask, (uint8_t)(mask >> 8)}; /* edge, active high */
		aml_bytes(&crs, d, sizeof(d));
	}
	aml_bytes(&crs, end_tag, sizeof(end_tag));
	aml_buffer(&crsbuf, crs.buf, crs.len);
	aml_name_integer(&body, "_HID", aml_eisaid(hid));
	aml_name_integer(&body, "_UID", 0);
	aml_name(&body, "_CRS", &crsbuf);
	aml_device(scope, name, &body);
	aml_free(&body);
	aml_free(&crs);
	aml_free(&crsbuf);
}

/*
 * A hardware-reduced platform has no fixed power button: a Generic Event
 * Device (ACPI0013) takes an interrupt and its _EVT notifies a PNP0C0C
 * power button device, which Linux turns into KEY_POWER.
 */
static void add_power_button(struct aml *sb)
{
	struct aml body, crs, crsbuf, evt, pwrb;
	/* Extended Interrupt: consumer, edge, active high, exclusive, one GSI. */
	uint8_t irq[9] = {0x89, 6, 0, 0x03, 1, ACPI_GED_GSI, 0, 0, 0};
	static const uint8_t end_tag[] = {0x79, 0x00};

	aml_init(&body);
	aml_init(&crs);
	aml_init(&crsbuf);
	aml_init(&evt);
	aml_init(&pwrb);
	aml_bytes(&crs, irq, sizeof(irq));
	aml_bytes(&crs, end_tag, sizeof(end_tag));
	aml_buffer(&crsbuf, crs.buf, crs.len);
	aml_name_string(&body, "_HID", "ACPI0013");
	aml_name_integer(&body, "_UID", 0);
	aml_name(&body, "_CRS", &crsbuf);
	aml_notify(&evt, "\\_SB_.PWRB", 0x80);
	aml_method(&body, "_EVT", 1, &evt);
	aml_device(sb, "GED0", &body);
	aml_name_integer(&pwrb, "_HID", aml_eisaid("PNP0C0C"));
	aml_name_integer(&pwrb, "_UID", 0);
	aml_device(sb, "PWRB", &pwrb);
	sb->error = sb->error ? sb->error : (body.error ? body.error : crs.error);
	aml_free(&body);
	aml_free(&crs);
	aml_free(&crsbuf);
	aml_free(&evt);
	aml_free(&pwrb);
}

/*
 * PCI0._PRT: where each slot's INTA#..INTD# go. Every entry names a GSI
 * directly (no link devices), which the OS takes as level-triggered and
 * shared, as PCI wants; the mapping is pci_intx_gsi's, the bus's own.
 */
static void add_prt(struct aml *pci)
{
	struct aml entries, prt;

	aml_init(&entries);
	aml_init(&prt);
	for (unsigned slot = 0; slot < PCI_MAX_DEVICES; slot++)
		for (unsigned pin = 1; pin <= 4; pin++) {
			struct aml e;

			aml_init(&e);
			aml_integer(&e, ((uint64_t)slot << 16) | 0xffff); /* any function of the slot */
			aml_integer(&e, pin - 1);                        /* 0 = INTA# */
			aml_integer(&e, 0);                              /* no link device: a GSI */
			aml_integer(&e, pci_intx_gsi(slot, pin));
			aml_package(&entries, 4, &e);
			if (e.error)
				entries.error = e.error;
			aml_free(&e);
		}
	aml_package(&prt, PCI_MAX_DEVICES * 4, &entries);
	if (entries.error)
		prt.error = entries.error;
	aml_name(pci, "_PRT", &prt);
	if (prt.error)
		pci->error = prt.error;
	aml_free(&entries);
	aml_free(&prt);
}

static int build_dsdt_aml(struct aml *out, const struct acpi_layout *l)
{
	struct aml s5, crs, crsbuf, pci, pci_dev, sb;
	static const uint8_t cf8_io[] = {0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08};
	static const uint8_t end_tag[] = {0x79, 0x00};
	int err;

	aml_init(&s5);
	aml_init(&crs);
	aml_init(&crsbuf);
	aml_init(&pci);
	aml_init(&pci_dev);
	aml_init(&sb);

	/* \_S5_: SLP_TYPa, SLP_TYPb, reserved, reserved. */
	{
		struct aml elems;
		aml_init(&elems);
		aml_integer(&elems, ACPI_S5_SLP_TYP);
		aml_integer(&elems, ACPI_S5_SLP_TYP);
		aml_integer(&elems, 0);
		aml_integer(&elems, 0);
		aml_package(&s5, 4, &elems);
		aml_free(&elems);
	}
	aml_name(out, "\\_S5_", &s5);

	/* The root bridge decodes bus 0, all ports but the config mechanism, and the PCI window. */
	put_word_space(&crs, 2, 0, 0, 0);
	aml_bytes(&crs, cf8_io, sizeof(cf8_io));
	put_word_space(&crs, 1, 3, 0x0000, 0x0cf7);
	put_word_space(&crs, 1, 3, 0x0d00, 0xffff);
	put_dword_memory(&crs, (uint32_t)l->pci_mmio_base,
			 (uint32_t)(l->pci_mmio_base + l->pci_mmio_size - 1));
	aml_bytes(&crs, end_tag, sizeof(end_tag));
	aml_buffer(&crsbuf, crs.buf, crs.len);

	aml_name_integer(&pci, "_HID", aml_eisaid("PNP0A03"));
	aml_name_integer(&pci, "_UID", 0);
	aml_name_integer(&pci, "_SEG", 0);
	aml_name_integer(&pci, "_BBN", 0);
	aml_name(&pci, "_CRS", &crsbuf);
	add_prt(&pci);
	aml_device(&pci_dev, "PCI0", &pci);
	/*
	 * Legacy devices are described too: on a hardware-reduced platform
	 * Linux maps an ISA interrupt only for a device whose _CRS names it.
	 */
	add_isa_device(&pci_dev, "COM1", "PNP0501", 0x3f8, 8, 4);
	add_isa_device(&pci_dev, "RTC_", "PNP0B00", 0x70, 2, -1);
	add_power_button(&pci_dev);
	aml_scope(out, "\\_SB_", &pci_dev);

	err = out->error ? out->error : crs.error;
	aml_free(&s5);
	aml_free(&crs);
	aml_free(&crsbuf);
	aml_free(&pci);
	aml_free(&pci_dev);
	aml_free(&sb);
	return err;
}

static long build_dsdt(uint8_t *buf, size_t size, size_t *off, const struct acpi_layout *l)
{
	struct aml a;
	struct acpi_header h;
	long at;

	aml_init(&a);
	aml_bytes(&a, &h, sizeof(h)); /* room for the header */
	if (build_dsdt_aml(&a, l) < 0 || a.error) {
		aml_free(&a);
		return -ENOMEM;
	}
	header_init(&h, "DSDT", (uint32_t)a.len, 2);
	memcpy(a.buf, &h, sizeof(h));
	at = put_table(buf, size, off, a.buf, a.len);
	aml_free(&a);
	return at;
}

static long build_madt(uint8_t *buf, size_t size, size_t *off, const struct acpi_layout *l)
{
	uint8_t t[36 + 8 + 8 * 256 + 12 + 6];
	size_t len = 44;
	long at;

	memset(t, 0, sizeof(t));
	put32(t + 36, LAPIC_ADDR);
	put32(t + 40, 0); /* no 8259 for the guest to mask: hardware-reduced */
	for (unsigned i = 0; i < l->nvcpus; i++) {
		uint8_t e[8] = {0 /* processor local APIC */, 8, (uint8_t)i, (uint8_t)i, 1, 0, 0, 0};
		memcpy(t + len, e, 8);
		len += 8;
	}
	{
		uint8_t e[12] = {1 /* I/O APIC */, 12, (uint8_t)l->nvcpus, 0};
		put32(e + 4, IOAPIC_ADDR);
		put32(e + 8, 0); /* GSI base */
		memcpy(t + len, e, 12);
		len += 12;
	}
	{
		/* LINT1 of every processor is the NMI line, as on a PC. */
		uint8_t e[6] = {4 /* local APIC NMI */, 6, 0xff, 0, 0, 1};
		memcpy(t + len, e, 6);
		len += 6;
	}
	header_init((struct acpi_header *)t, "APIC", (uint32_t)len, 5);
	at = put_table(buf, size, off, t, len);
	return at;
}

long acpi_build(uint8_t *buf, size_t size, uint64_t base, const struct acpi_layout *l)
{
	struct acpi_fadt fadt;
	struct acpi_rsdp rsdp;
	uint8_t xsdt[36 + 2 * 8];
	size_t off = 0;
	long dsdt, madt, fadt_at, xsdt_at, rsdp_at;

	if (l->nvcpus == 0 || l->nvcpus > 254)
		return -EINVAL;
	memset(buf, 0, size);
	/* The RSDP goes first, 16-byte aligned, where a scan of the BIOS area finds it. */
	off = sizeof(rsdp);
	dsdt = build_dsdt(buf, size, &off, l);
	if (dsdt < 0)
		return dsdt;
	madt = build_madt(buf, size, &off, l);
	if (madt < 0)
		return madt;

	memset(&fadt, 0, sizeof(fadt));
	header_init(&fadt.h, "FACP", sizeof(fadt), 6);
	fadt.minor_version = 5;
	fadt.dsdt = (uint32_t)(base + (uint64_t)dsdt);
	fadt.x_dsdt = base + (uint64_t)dsdt;
	fadt.sci_int = ACPI_SCI_IRQ;
	fadt.century = 0x32;
	fadt.iapc_boot_arch = IAPC_NO_VGA;
	fadt.flags = FADT_WBINVD | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_RESET_REG_SUP |
		     FADT_HW_REDUCED_ACPI;
	fadt.reset_reg = (struct acpi_gas){1, 8, 0, 1, ACPI_RESET_PORT};
	fadt.reset_value = ACPI_RESET_VALUE;
	fadt.sleep_control = (struct acpi_gas){1, 8, 0, 1, ACPI_SLEEP_CONTROL_PORT};
	fadt.sleep_status = (struct acpi_gas){1, 8, 0, 1, ACPI_SLEEP_STATUS_PORT};
	memcpy(&fadt.hypervisor_vendor, "DOMUS\0\0\0", 8);
	fadt_at = put_table(buf, size, &off, &fadt, sizeof(fadt));
	if (fadt_at < 0)
		return fadt_at;

	memset(xsdt, 0, sizeof(xsdt));
	header_init((struct acpi_header *)xsdt, "XSDT", sizeof(xsdt), 1);
	put64(xsdt + 36, base + (uint64_t)fadt_at);
	put64(xsdt + 44, base + (uint64_t)madt);
	xsdt_at = put_table(buf, size, &off, xsdt, sizeof(xsdt));
	if (xsdt_at < 0)
		return xsdt_at;

	memset(&rsdp, 0, sizeof(rsdp));
	memcpy(rsdp.signature, "RSD PTR ", 8);
	memcpy(rsdp.oem_id, "DOMUS ", 6);
	rsdp.revision = 2;
	rsdp.length = sizeof(rsdp);
	rsdp.xsdt_address = base + (uint64_t)xsdt_at;
	rsdp.checksum = (uint8_t)-acpi_checksum(&rsdp, 20);
	rsdp.extended_checksum = (uint8_t)-acpi_checksum(&rsdp, sizeof(rsdp));
	rsdp_at = 0;
	memcpy(buf + rsdp_at, &rsdp, sizeof(rsdp));
	return rsdp_at;
}
