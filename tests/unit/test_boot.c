/* Kernel loading: the bzImage zero page, the PVH start info, and bad kernels. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/boot.h"
#include "vmm/bootparam.h"

#define MEM (64ULL << 20)
#define PAYLOAD 8192

static uint8_t *mem;
static struct guest_mem gm;
static char err[256];

static int setup(void **state)
{
	mem = calloc(1, MEM);
	gmem_wrap(&gm, mem, MEM);
	err[0] = 0;
	return 0;
}

static int teardown(void **state)
{
	free(mem);
	return 0;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* A bzImage as the boot protocol lays it out: 4 setup sectors plus the boot sector, then payload. */
static uint8_t *make_bzimage(size_t *size)
{
	size_t setup = 5 * 512;
	uint8_t *k = calloc(1, setup + PAYLOAD);

	k[0x1f1] = 4;
	put32(k + 0x1f4, PAYLOAD / 16);
	put16(k + 0x1fe, 0xaa55);
	k[0x200] = 0xeb;
	k[0x201] = 0x66; /* the header ends at 0x268 */
	memcpy(k + 0x202, "HdrS", 4);
	put16(k + 0x206, 0x020f);
	put32(k + 0x22c, 0x37ffffff);
	put32(k + 0x230, 0x200000);
	k[0x234] = 1;
	put16(k + 0x236, XLF_KERNEL_64);
	put32(k + 0x238, 255);
	put64(k + 0x258, 0x1000000);
	put32(k + 0x260, 0x100000);
	for (size_t i = 0; i < PAYLOAD; i++)
		k[setup + i] = (uint8_t)(i * 7);
	*size = setup + PAYLOAD;
	return k;
}

static void test_bzimage_zero_page(void **state)
{
	struct kernel_image k;
	struct boot_entry e;
	size_t size;
	uint8_t *data = make_bzimage(&size), initrd[4096];
	const struct boot_params *bp = (const struct boot_params *)(mem + BOOT_ZERO_PAGE_ADDR);
	const char *cmdline = "console=ttyS0 unit-test";
	uint64_t *pml4 = (uint64_t *)(mem + BOOT_PML4_ADDR), *pdpt = (uint64_t *)(mem + BOOT_PDPT_ADDR);

	memset(initrd, 0x5a, sizeof(initrd));
	assert_int_equal(kernel_parse(&k, data, size, err, sizeof(err)), 0);
	assert_int_equal(k.kind, KERNEL_BZIMAGE);
	assert_int_equal(boot_setup(&gm, &k, initrd, sizeof(initrd), cmdline, 0xe0000, &e, err,
				    sizeof(err)), 0);
	assert_true(e.long_mode);
	assert_int_equal(e.rip, 0x1000000 + 0x200);
	assert_int_equal(e.rsi, BOOT_ZERO_PAGE_ADDR);
	/* The protected-mode kernel is at its preferred address. */
	assert_memory_equal(mem + 0x1000000, data + 5 * 512, PAYLOAD);
	assert_memory_equal(mem + BOOT_ZERO_PAGE_ADDR + 0x202, "HdrS", 4);
	assert_int_equal(mem[BOOT_ZERO_PAGE_ADDR + 0x210], 0xff); /* type_of_loader */
	assert_int_equal(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_ADDR);
	assert_string_equal((char *)mem + BOOT_CMDLINE_ADDR, cmdline);
	assert_int_equal(bp->acpi_rsdp_addr, 0xe0000);
	/* The initrd is page aligned, above the kernel, below its limit, and really there. */
	assert_int_equal(bp->hdr.ramdisk_size, sizeof(initrd));
	assert_int_equal(bp->hdr.ramdisk_image % 4096, 0);
	assert_true(bp->hdr.ramdisk_image >= 0x1000000 + 0x100000);
	assert_true(bp->hdr.ramdisk_image + sizeof(initrd) <= MEM);
	assert_memory_equal(mem + bp->hdr.ramdisk_image, initrd, sizeof(initrd));
	/* e820: RAM at 0, RAM from 1 MiB to the end, the BIOS area reserved. */
	assert_true(bp->e820_entries >= 3);
	assert_int_equal(bp->e820_table[0].addr, 0);
	assert_int_equal(bp->e820_table[0].type, E820_RAM);
	{
		int found_high = 0, found_bios = 0;
		for (unsigned i = 0; i < bp->e820_entries; i++) {
			const struct e820_entry *r = &bp->e820_table[i];
			if (r->addr == 0x100000 && r->type == E820_RAM && r->size == MEM - 0x100000)
				found_high = 1;
			if (r->addr <= 0xf0000 && r->addr + r->size >= 0x100000 && r->type == E820_RESERVED)
				found_bios = 1;
		}
		assert_true(found_high);
		assert_true(found_bios);
	}
	/* Identity map: PML4[0] -> PDPT, PDPT[3] -> 4th PD, whose last entry maps 4 GiB - 2 MiB. */
	assert_int_equal(pml4[0] & ~0xfffULL, BOOT_PDPT_ADDR);
	assert_int_equal(pdpt[3] & ~0xfffULL, BOOT_PD_ADDR + 3 * 0x1000);
	assert_int_equal(((uint64_t *)(mem + BOOT_PD_ADDR + 3 * 0x1000))[511],
			 (0xffe00000ULL | 0x83));
	kernel_free(&k);
}

static void expect_parse_error(uint8_t *data, size_t size, const char *text)
{
	struct kernel_image k;

	assert_int_equal(kernel_parse(&k, data, size, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, text));
	free(data);
}

static void test_bzimage_errors(void **state)
{
	size_t size;
	uint8_t *k;

	k = make_bzimage(&size);
	expect_parse_error(k, size - 100, "truncated");
	k = make_bzimage(&size);
	put16(k + 0x206, 0x0204);
	expect_parse_error(k, size, "64-bit entry");
	k = make_bzimage(&size);
	memcpy(k + 0x202, "HdrX", 4);
	expect_parse_error(k, size, "not a kernel");
	k = calloc(1, 100);
	expect_parse_error(k, 100, "not a kernel");
}

static void test_fit_errors(void **state)
{
	struct kernel_image k;
	size_t size;
	uint8_t *data = make_bzimage(&size);
	char longline[400];

	assert_int_equal(kernel_parse(&k, data, size, err, sizeof(err)), 0);
	assert_int_equal(boot_check_fit(&k, 0, "", 16ULL << 20, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too small"));
	assert_int_equal(boot_check_fit(&k, 60ULL << 20, "", MEM, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "initrd"));
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	assert_int_equal(boot_check_fit(&k, 0, longline, MEM, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "command line"));
	assert_int_equal(boot_check_fit(&k, 4096, "ok", MEM, err, sizeof(err)), 0);
	kernel_free(&k);
}

/* An ELF64 with one PT_LOAD at 1 MiB and a PT_NOTE with the PVH entry. */
static uint8_t *make_pvh_elf(size_t *size, unsigned descsz, int with_note, uint64_t paddr)
{
	size_t phoff = sizeof(Elf64_Ehdr), noteoff = 0x200, codeoff = 0x400, n = 0x1000;
	uint8_t *f = calloc(1, n);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)f;
	Elf64_Phdr ph[2];
	Elf64_Nhdr nh = {.n_namesz = 4, .n_descsz = descsz, .n_type = XEN_ELFNOTE_PHYS32_ENTRY};
	uint64_t entry = 0x100010;

	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_machine = EM_X86_64;
	eh->e_phoff = phoff;
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 2;
	memset(ph, 0, sizeof(ph));
	ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = codeoff, .p_paddr = paddr,
			     .p_filesz = 0x100, .p_memsz = 0x2000};
	ph[1] = (Elf64_Phdr){.p_type = with_note ? PT_NOTE : PT_NULL, .p_offset = noteoff,
			     .p_filesz = sizeof(nh) + 4 + 8};
	memcpy(f + phoff, ph, sizeof(ph));
	memcpy(f + noteoff, &nh, sizeof(nh));
	memcpy(f + noteoff + sizeof(nh), "Xen", 4);
	memcpy(f + noteoff + sizeof(nh) + 4, &entry, descsz);
	memset(f + codeoff, 0x90, 0x100);
	*size = n;
	return f;
}

static void check_pvh(unsigned descsz)
{
	struct kernel_image k;
	struct boot_entry e;
	size_t size;
	uint8_t *data = make_pvh_elf(&size, descsz, 1, 0x100000), initrd[100];
	struct hvm_start_info si;
	struct hvm_modlist_entry mod;

	memset(initrd, 0xab, sizeof(initrd));
	assert_int_equal(kernel_parse(&k, data, size, err, sizeof(err)), 0);
	assert_int_equal(k.kind, KERNEL_PVH_ELF);
	assert_int_equal(k.pvh_entry, 0x100010);
	memset(mem + 0x100100, 0xee, 16); /* bss must be cleared by the loader */
	assert_int_equal(boot_setup(&gm, &k, initrd, sizeof(initrd), "pvh-cmdline", 0xe0000, &e,
				    err, sizeof(err)), 0);
	assert_false(e.long_mode);
	assert_int_equal(e.rip, 0x100010);
	assert_int_equal(e.rbx, BOOT_START_INFO_ADDR);
	assert_int_equal(mem[0x100000], 0x90);
	assert_int_equal(mem[0x100100], 0);
	memcpy(&si, mem + BOOT_START_INFO_ADDR, sizeof(si));
	assert_int_equal(si.magic, HVM_START_MAGIC);
	assert_int_equal(si.version, 1);
	assert_string_equal((char *)mem + si.cmdline_paddr, "pvh-cmdline");
	assert_int_equal(si.rsdp_paddr, 0xe0000);
	assert_true(si.memmap_entries >= 3);
	assert_int_equal(si.nr_modules, 1);
	memcpy(&mod, mem + si.modlist_paddr, sizeof(mod));
	assert_int_equal(mod.size, sizeof(initrd));
	assert_memory_equal(mem + mod.paddr, initrd, sizeof(initrd));
	kernel_free(&k);
}

static void test_pvh_4(void **state) { check_pvh(4); }
static void test_pvh_8(void **state) { check_pvh(8); }

static void test_pvh_errors(void **state)
{
	size_t size;
	uint8_t *f;

	f = make_pvh_elf(&size, 4, 0, 0x100000);
	expect_parse_error(f, size, "PVH");
	f = make_pvh_elf(&size, 4, 1, 0xfff00000);
	expect_parse_error(f, size, "outside");
	f = make_pvh_elf(&size, 4, 1, 0x100000);
	((Elf64_Ehdr *)f)->e_phoff = size - 8; /* program headers past the end */
	expect_parse_error(f, size, "program headers");
	f = make_pvh_elf(&size, 4, 1, 0x100000);
	expect_parse_error(f, 0x300, "truncated");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bzimage_zero_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fit_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pvh_4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pvh_8, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pvh_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
