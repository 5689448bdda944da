/* ACPI tables: checksums, layout, and what Linux reads from them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/acpi.h"
#include "vmm/aml.h"

#define BASE 0xe0000
#define SIZE 0x20000

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* The table at guest address gpa, checked: inside the buffer, signature, zero checksum. */
static const uint8_t *table(const uint8_t *buf, uint64_t gpa, const char *sig)
{
	const uint8_t *t;
	uint32_t len;

	assert_true(gpa >= BASE && gpa < BASE + SIZE);
	t = buf + (gpa - BASE);
	assert_memory_equal(t, sig, 4);
	len = rd32(t + 4);
	assert_true(len >= 36 && gpa - BASE + len <= SIZE);
	assert_int_equal(acpi_checksum(t, len), 0);
	return t;
}

static void check_tables(unsigned nvcpus)
{
	struct acpi_layout l = {.nvcpus = nvcpus, .pci_mmio_base = 0xe0000000, .pci_mmio_size = 0x1ec00000};
	uint8_t *buf = malloc(SIZE);
	const uint8_t *rsdp, *xsdt, *fadt = NULL, *madt = NULL, *dsdt;
	long at = acpi_build(buf, SIZE, BASE, &l);
	unsigned lapics = 0, ioapics = 0;

	assert_true(at >= 0);
	rsdp = buf + at;
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(rsdp[15], 2); /* ACPI 2.0+ RSDP */
	assert_int_equal(acpi_checksum(rsdp, 20), 0);
	assert_int_equal(rd32(rsdp + 20), 36);
	assert_int_equal(acpi_checksum(rsdp, 36), 0);
	xsdt = table(buf, rd64(rsdp + 24), "XSDT");
	for (uint32_t off = 36; off < rd32(xsdt + 4); off += 8) {
		uint64_t gpa = rd64(xsdt + off);
		const uint8_t *t = buf + (gpa - BASE);
		if (!memcmp(t, "FACP", 4))
			fadt = table(buf, gpa, "FACP");
		else if (!memcmp(t, "APIC", 4))
			madt = table(buf, gpa, "APIC");
	}
	assert_non_null(fadt);
	assert_non_null(madt);

	/* FADT: hardware-reduced, reset and sleep registers in system I/O space. */
	assert_int_equal(rd32(fadt + 4), 276);
	assert_true(rd32(fadt + 112) & (1u << 20));
	assert_true(rd32(fadt + 112) & (1u << 10));
	assert_int_equal(fadt[116], 1);
	assert_int_equal(rd64(fadt + 120), ACPI_RESET_PORT);
	assert_int_equal(fadt[128], ACPI_RESET_VALUE);
	assert_int_equal(fadt[244], 1);
	assert_int_equal(rd64(fadt + 248), ACPI_SLEEP_CONTROL_PORT);
	dsdt = table(buf, rd64(fadt + 140), "DSDT");
	assert_int_equal(rd32(fadt + 40), rd64(fadt + 140));

	/* MADT: one enabled local APIC per vCPU with ids 0..n-1, one I/O APIC. */
	assert_int_equal(rd32(madt + 36), LAPIC_ADDR);
	for (uint32_t off = 44; off < rd32(madt + 4);) {
		const uint8_t *e = madt + off;
		assert_true(e[1] >= 2);
		if (e[0] == 0) {
			assert_int_equal(e[3], lapics);
			assert_int_equal(e[4] & 1, 1);
			lapics++;
		} else if (e[0] == 1) {
			assert_int_equal(rd32(e + 4), IOAPIC_ADDR);
			ioapics++;
		}
		off += e[1];
	}
	assert_int_equal(lapics, nvcpus);
	assert_int_equal(ioapics, 1);

	/*
	 * DSDT: \_S5_, the PCI root bridge's EISA id, the UART's, and the power
	 * button: a GED (ACPI0013) whose _CRS names ACPI_GED_GSI and whose _EVT
	 * notifies PWRB (PNP0C0C) with 0x80.
	 */
	{
		uint32_t len = rd32(dsdt + 4);
		uint32_t pnp0a03 = aml_eisaid("PNP0A03"), pnp0501 = aml_eisaid("PNP0501");
		uint32_t pnp0c0c = aml_eisaid("PNP0C0C");
		static const uint8_t ged_irq[] = {0x89, 6, 0, 0x03, 1, ACPI_GED_GSI, 0, 0, 0};
		/* Notify(\\_SB_.PWRB, 0x80): RootChar, DualNamePrefix, two segments, BytePrefix 0x80. */
		static const uint8_t notify[] = {0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x0a, 0x80};
		int s5 = 0, pci = 0, com = 0, ged = 0, irq = 0, evt = 0, pwrb = 0;
		for (uint32_t i = 36; i + 4 <= len; i++) {
			s5 |= !memcmp(dsdt + i, "_S5_", 4);
			pci |= rd32(dsdt + i) == pnp0a03;
			com |= rd32(dsdt + i) == pnp0501;
			pwrb |= rd32(dsdt + i) == pnp0c0c;
			ged |= i + 9 <= len && !memcmp(dsdt + i, "ACPI0013", 8);
			irq |= i + sizeof(ged_irq) <= len && !memcmp(dsdt + i, ged_irq, sizeof(ged_irq));
			evt |= i + sizeof(notify) <= len && !memcmp(dsdt + i, notify, sizeof(notify));
		}
		assert_true(s5);
		assert_true(pci);
		assert_true(com);
		assert_true(ged);
		assert_true(irq);
		assert_true(evt);
		assert_true(pwrb);
	}
	free(buf);
}

static void test_tables_1(void **state) { check_tables(1); }
static void test_tables_2(void **state) { check_tables(2); }
static void test_tables_8(void **state) { check_tables(8); }

static void test_bad_layout(void **state)
{
	struct acpi_layout l = {.nvcpus = 0};
	uint8_t *buf = malloc(SIZE);

	assert_int_equal(acpi_build(buf, SIZE, BASE, &l), -EINVAL);
	l.nvcpus = 2;
	l.pci_mmio_base = 0xe0000000;
	l.pci_mmio_size = 0x1000;
	assert_int_equal(acpi_build(buf, 64, BASE, &l), -ENOSPC); /* buffer too small */
	free(buf);
}

static void test_eisaid(void **state)
{
	/* The encoding ACPI compilers produce for EISAID("PNP0A03"). */
	assert_int_equal(aml_eisaid("PNP0A03"), 0x030ad041);
	assert_int_equal(aml_eisaid("PNP0501"), 0x0105d041);
	assert_int_equal(aml_eisaid("TOOLONG1"), 0);
}

/* Decodes a PkgLength per ACPI 6 section 20.2.4. */
static size_t decode_pkglength(const uint8_t *p, size_t *nbytes)
{
	size_t extra = p[0] >> 6, v;

	*nbytes = 1 + extra;
	if (!extra)
		return p[0] & 0x3f;
	v = p[0] & 0x0f;
	for (size_t i = 0; i < extra; i++)
		v |= (size_t)p[1 + i] << (4 + 8 * i);
	return v;
}

static void test_pkglength(void **state)
{
	size_t bodies[] = {0, 0x3e, 0x3f, 0x100, 0xffd, 0xffe, 0x12345, 0xffffc};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		uint8_t enc[4];
		size_t n = aml_pkglength(enc, bodies[i]), nbytes;
		assert_true(n >= 1 && n <= 4);
		/* The encoded length counts the body and the length bytes themselves. */
		assert_int_equal(decode_pkglength(enc, &nbytes), bodies[i] + n);
		assert_int_equal(nbytes, n);
	}
	{
		uint8_t enc[4];
		assert_int_equal(aml_pkglength(enc, 0x3e), 1);
		assert_int_equal(aml_pkglength(enc, 0x3f), 2);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables_1), cmocka_unit_test(test_tables_2),
		cmocka_unit_test(test_tables_8), cmocka_unit_test(test_bad_layout),
		cmocka_unit_test(test_eisaid),   cmocka_unit_test(test_pkglength),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
