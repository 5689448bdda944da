#include "vmm/boot.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/passed_fd.h"
#include "vmm/bootparam.h"

/* A kernel file bigger than this is not a kernel we can load. */
#define KERNEL_FILE_MAX (512ULL << 20)

#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((uint64_t)(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a)-1))

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

static int parse_bzimage(struct kernel_image *k, char *err, size_t errlen)
{
	struct setup_header h;
	unsigned setup_sects;
	uint64_t need;

	if (k->size < 0x1f1 + sizeof(h))
		return fail(err, errlen, -EINVAL, "truncated bzImage (%zu bytes)", k->size);
	memcpy(&h, k->data + 0x1f1, sizeof(h));
	if (h.version < 0x020c || !(h.xloadflags & XLF_KERNEL_64))
		return fail(err, errlen, -EINVAL,
			    "bzImage boot protocol %u.%02u has no 64-bit entry (need 2.12 or later)",
			    h.version >> 8, h.version & 0xff);
	setup_sects = h.setup_sects ? h.setup_sects : 4;
	k->setup_size = (size_t)(setup_sects + 1) * 512;
	need = k->setup_size + (uint64_t)h.syssize * 16;
	if (h.syssize == 0 || k->size < need)
		return fail(err, errlen, -EINVAL,
			    "truncated bzImage: %zu bytes, header says %llu", k->size,
			    (unsigned long long)need);
	/*
	 * Load where the kernel prefers to run, so a relocatable kernel need not
	 * move itself; a non-relocatable one runs at 1 MiB.
	 */
	k->load_addr = h.relocatable_kernel ? h.pref_address : BOOT_HIGH_START;
	if (k->load_addr < BOOT_HIGH_START || k->load_addr > GMEM_LOW_LIMIT ||
	    (h.kernel_alignment && (k->load_addr & (h.kernel_alignment - 1))))
		return fail(err, errlen, -EINVAL, "bzImage asks for a bad load address 0x%llx",
			    (unsigned long long)k->load_addr);
	k->init_size = h.init_size;
	if (k->init_size < k->size - k->setup_size)
		k->init_size = k->size - k->setup_size;
	k->initrd_addr_max = h.initrd_addr_max ? h.initrd_addr_max : 0x37ffffff;
	k->cmdline_max = h.cmdline_size ? h.cmdline_size : 255;
	k->kind = KERNEL_BZIMAGE;
	return 0;
}

/* Finds the PVH entry in the notes of [off, off+len) of the file. */
static int find_pvh_note(struct kernel_image *k, uint64_t off, uint64_t len)
{
	uint64_t pos = off, end;

	if (off > k->size || len > k->size - off)
		return -EINVAL;
	end = off + len;
	while (end - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr n;
		uint64_t name_len, desc_len, desc_off;

		memcpy(&n, k->data + pos, sizeof(n));
		name_len = ALIGN_UP((uint64_t)n.n_namesz, 4);
		desc_len = ALIGN_UP((uint64_t)n.n_descsz, 4);
		desc_off = pos + sizeof(n) + name_len;
		if (name_len > end - pos - sizeof(n) || desc_len > end - desc_off)
			return -EINVAL;
		if (n.n_type == XEN_ELFNOTE_PHYS32_ENTRY && n.n_namesz == 4 &&
		    !memcmp(k->data + pos + sizeof(n), "Xen", 4)) {
			uint64_t entry = 0;
			if (n.n_descsz != 4 && n.n_descsz != 8)
				return -EINVAL;
			memcpy(&entry, k->data + desc_off, n.n_descsz);
			if (entry >= GMEM_LOW_LIMIT)
				return -EINVAL;
			k->pvh_entry = (uint32_t)entry;
			return 1;
		}
		pos = desc_off + desc_len;
	}
	return 0;
}

static int parse_elf(struct kernel_image *k, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	int found = 0;

	if (k->size < sizeof(eh))
		return fail(err, errlen, -EINVAL, "truncated ELF header");
	memcpy(&eh, k->data, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64)
		return fail(err, errlen, -EINVAL, "ELF file is not a 64-bit x86 executable");
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64 ||
	    eh.e_phoff > k->size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > k->size - eh.e_phoff)
		return fail(err, errlen, -EINVAL, "truncated or bad ELF program headers");
	k->elf_lowest = UINT64_MAX;
	k->elf_highest = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, k->data + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_NOTE && !found) {
			found = find_pvh_note(k, ph.p_offset, ph.p_filesz);
			if (found < 0)
				return fail(err, errlen, -EINVAL, "bad ELF note segment %u", i);
		}
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_offset > k->size || ph.p_filesz > k->size - ph.p_offset)
			return fail(err, errlen, -EINVAL,
				    "truncated ELF: segment %u lies past the end of the file", i);
		if (ph.p_filesz > ph.p_memsz || ph.p_paddr >= GMEM_LOW_LIMIT ||
		    ph.p_memsz > GMEM_LOW_LIMIT - ph.p_paddr || ph.p_paddr < BOOT_HIGH_START)
			return fail(err, errlen, -EINVAL,
				    "ELF segment %u at 0x%llx+0x%llx is outside loadable memory", i,
				    (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
		if (ph.p_paddr < k->elf_lowest)
			k->elf_lowest = ph.p_paddr;
		if (ph.p_paddr + ph.p_memsz > k->elf_highest)
			k->elf_highest = ph.p_paddr + ph.p_memsz;
	}
	if (!found)
		return fail(err, errlen, -EINVAL,
			    "ELF kernel has no PVH entry note (Xen note type 18); not bootable");
	if (k->elf_highest == 0)
		return fail(err, errlen, -EINVAL, "ELF kernel has no loadable segment");
	k->kind = KERNEL_PVH_ELF;
	return 0;
}

int kernel_parse(struct kernel_image *k, uint8_t *data, size_t size, char *err, size_t errlen)
{
	uint32_t magic = 0;
	int ret;

	memset(k, 0, sizeof(*k));
	k->data = data;
	k->size = size;
	if (size >= 0x206)
		memcpy(&magic, data + 0x202, 4);
	if (size >= 4 && !memcmp(data, ELFMAG, SELFMAG))
		ret = parse_elf(k, err, errlen);
	else if (magic == HDRS_MAGIC)
		ret = parse_bzimage(k, err, errlen);
	else
		ret = fail(err, errlen, -EINVAL,
			   "not a kernel: neither a bzImage (no HdrS signature) nor an ELF with a PVH note");
	if (ret < 0)
		memset(k, 0, sizeof(*k));
	return ret;
}

int kernel_load_file(const char *path, struct kernel_image *k, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd, ret;

	fd = passed_open(path, O_RDONLY);
	if (fd < 0)
		return fail(err, errlen, -errno, "cannot open kernel %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, -EINVAL, "kernel %s is not a regular file", path);
	}
	if (st.st_size == 0 || (uint64_t)st.st_size > KERNEL_FILE_MAX) {
		close(fd);
		return fail(err, errlen, -EINVAL, "kernel %s: size %lld is not that of a kernel",
			    path, (long long)st.st_size);
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		close(fd);
		return fail(err, errlen, -ENOMEM, "kernel %s: out of memory", path);
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			close(fd);
			free(buf);
			return fail(err, errlen, ret, "reading kernel %s failed", path);
		}
		got += (size_t)n;
	}
	close(fd);
	char why[256];
	ret = kernel_parse(k, buf, got, why, sizeof(why));
	if (ret < 0) {
		free(buf);
		return fail(err, errlen, ret, "kernel %s: %s", path, why);
	}
	return 0;
}

void kernel_free(struct kernel_image *k)
{
	free(k->data);
	memset(k, 0, sizeof(*k));
}

/* Highest guest-physical address the kernel image occupies, once loaded. */
static uint64_t kernel_end(const struct kernel_image *k)
{
	if (k->kind == KERNEL_BZIMAGE)
		return k->load_addr + k->init_size;
	return k->elf_highest;
}

/* Where the initrd goes: as high as the kernel allows, page aligned. */
static int initrd_place(const struct kernel_image *k, uint64_t initrd_size, uint64_t low_end,
			uint64_t *addr)
{
	uint64_t top = low_end;

	if (k->kind == KERNEL_BZIMAGE && (uint64_t)k->initrd_addr_max + 1 < top)
		top = (uint64_t)k->initrd_addr_max + 1;
	if (initrd_size > top)
		return -ENOSPC;
	*addr = ALIGN_DOWN(top - initrd_size, 4096);
	if (*addr < ALIGN_UP(kernel_end(k), 4096))
		return -ENOSPC;
	return 0;
}

int boot_check_fit(const struct kernel_image *k, uint64_t initrd_size, const char *cmdline,
		   uint64_t mem_size, char *err, size_t errlen)
{
	uint64_t low_end = mem_size < GMEM_LOW_LIMIT ? mem_size : GMEM_LOW_LIMIT;
	/* Room the kernel needs past its image before it can allocate anything. */
	uint64_t need = ALIGN_UP(kernel_end(k), 1 << 20) + (8ULL << 20);
	size_t cmax = k->kind == KERNEL_BZIMAGE ? k->cmdline_max : BOOT_CMDLINE_MAX - 1;
	uint64_t addr;

	if (strlen(cmdline) > cmax || strlen(cmdline) >= BOOT_CMDLINE_MAX)
		return fail(err, errlen, -EINVAL, "command line is %zu bytes; the kernel takes at most %zu",
			    strlen(cmdline), cmax);
	if (low_end < need)
		return fail(err, errlen, -EINVAL,
			    "memory %llu MiB is too small: this kernel needs at least %llu MiB",
			    (unsigned long long)(mem_size >> 20), (unsigned long long)(need >> 20));
	if (initrd_size && initrd_place(k, initrd_size, low_end, &addr) < 0)
		return fail(err, errlen, -EINVAL,
			    "initrd of %llu MiB does not fit in %llu MiB of memory next to the kernel",
			    (unsigned long long)(initrd_size >> 20),
			    (unsigned long long)(mem_size >> 20));
	return 0;
}

unsigned boot_e820(const struct guest_mem *gm, struct e820_entry *out, unsigned max)
{
	struct e820_entry e[5];
	unsigned n = 0;

	e[n++] = (struct e820_entry){0, BOOT_EBDA_START, E820_RAM};
	e[n++] = (struct e820_entry){BOOT_EBDA_START, 0xa0000 - BOOT_EBDA_START, E820_RESERVED};
	e[n++] = (struct e820_entry){BOOT_ACPI_ADDR, BOOT_ACPI_SIZE, E820_RESERVED};
	e[n++] = (struct e820_entry){BOOT_HIGH_START, gmem_low_end(gm) - BOOT_HIGH_START, E820_RAM};
	if (gm->nregions > 1)
		e[n++] = (struct e820_entry){gm->regions[1].gpa, gm->regions[1].size, E820_RAM};
	if (n > max)
		n = max;
	memcpy(out, e, n * sizeof(e[0]));
	return n;
}

void boot_write_reset_vector(struct guest_mem *gm, uint16_t reset_port, uint8_t reset_value)
{
	const uint8_t code[] = {
		0xb0, reset_value,                                   /* mov al, value */
		0xba, (uint8_t)reset_port, (uint8_t)(reset_port >> 8), /* mov dx, port */
		0xee,                                                /* out dx, al */
		0xf4,                                                /* hlt */
		0xeb, 0xfd,                                          /* jmp back to hlt */
	};

	gmem_write(gm, 0xffff0, code, sizeof(code));
}

/* GDT: null, null, 64-bit code, data, 32-bit code is not needed (PVH uses data/code via cache). */
static void write_gdt(struct guest_mem *gm)
{
	uint64_t gdt[6] = {
		0,
		0,
		0x00af9b000000ffffULL, /* 0x10: code, L=1 (PVH entry loads the cache with L=0) */
		0x00cf93000000ffffULL, /* 0x18: flat data */
		0x00008b0000000067ULL, /* 0x20: TSS, busy, base 0, limit 0x67 */
		0,
	};
	gmem_write(gm, BOOT_GDT_ADDR, gdt, sizeof(gdt));
}

/* Identity-maps the first 4 GiB with 2 MiB pages, as the 64-bit boot protocol requires. */
static void write_page_tables(struct guest_mem *gm)
{
	uint64_t pml4[512] = {0}, pdpt[512] = {0}, pd[512];

	pml4[0] = BOOT_PDPT_ADDR | 0x3;
	for (unsigned i = 0; i < 4; i++) {
		pdpt[i] = (BOOT_PD_ADDR + i * 0x1000) | 0x3;
		for (unsigned j = 0; j < 512; j++)
			pd[j] = ((uint64_t)i << 30) + ((uint64_t)j << 21) + 0x83; /* P, RW, PS */
		gmem_write(gm, BOOT_PD_ADDR + i * 0x1000, pd, sizeof(pd));
	}
	gmem_write(gm, BOOT_PML4_ADDR, pml4, sizeof(pml4));
	gmem_write(gm, BOOT_PDPT_ADDR, pdpt, sizeof(pdpt));
}

static int setup_bzimage(struct guest_mem *gm, const struct kernel_image *k, uint64_t initrd_addr,
			 uint64_t initrd_size, uint64_t rsdp_addr, struct boot_entry *entry)
{
	struct boot_params bp;
	size_t hdr_end;

	memset(&bp, 0, sizeof(bp));
	/* The header runs from 0x1f1 to 0x202 plus the byte at 0x201. */
	hdr_end = 0x202 + k->data[0x201];
	if (hdr_end > sizeof(bp) || hdr_end > k->size)
		return -EINVAL;
	memcpy((uint8_t *)&bp + 0x1f1, k->data + 0x1f1, hdr_end - 0x1f1);
	bp.hdr.type_of_loader = 0xff;
	bp.hdr.loadflags |= LOADFLAG_CAN_USE_HEAP;
	bp.hdr.heap_end_ptr = 0xfe00;
	bp.hdr.vid_mode = 0xffff;
	bp.hdr.cmd_line_ptr = BOOT_CMDLINE_ADDR;
	bp.hdr.ramdisk_image = (uint32_t)initrd_addr;
	bp.hdr.ramdisk_size = (uint32_t)initrd_size;
	bp.hdr.code32_start = (uint32_t)k->load_addr;
	bp.acpi_rsdp_addr = rsdp_addr;
	bp.e820_entries = (uint8_t)boot_e820(gm, bp.e820_table, BP_E820_MAX);
	if (gmem_write(gm, k->load_addr, k->data + k->setup_size, k->size - k->setup_size) < 0)
		return -EFAULT;
	if (gmem_write(gm, BOOT_ZERO_PAGE_ADDR, &bp, sizeof(bp)) < 0)
		return -EFAULT;
	entry->long_mode = true;
	entry->rip = k->load_addr + 0x200;
	entry->rsi = BOOT_ZERO_PAGE_ADDR;
	return 0;
}

static int setup_pvh(struct guest_mem *gm, const struct kernel_image *k, uint64_t initrd_addr,
		     uint64_t initrd_size, uint64_t rsdp_addr, struct boot_entry *entry)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)k->data;
	struct hvm_start_info si = {0};
	struct hvm_modlist_entry mod = {0};
	struct hvm_memmap_table_entry mm[8];
	struct e820_entry e[8];
	uint64_t at = BOOT_START_INFO_ADDR + sizeof(si);
	unsigned n;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		memcpy(&ph, k->data + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		dst = gmem_ptr(gm, ph.p_paddr, ph.p_memsz);
		if (!dst)
			return -EFAULT;
		memcpy(dst, k->data + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}
	n = boot_e820(gm, e, 8);
	for (unsigned i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_table_entry){e[i].addr, e[i].size, e[i].type, 0};
	si.magic = HVM_START_MAGIC;
	si.version = 1;
	si.cmdline_paddr = BOOT_CMDLINE_ADDR;
	si.rsdp_paddr = rsdp_addr;
	si.memmap_paddr = at;
	si.memmap_entries = n;
	gmem_write(gm, at, mm, n * sizeof(mm[0]));
	at += n * sizeof(mm[0]);
	if (initrd_size) {
		mod.paddr = initrd_addr;
		mod.size = initrd_size;
		si.nr_modules = 1;
		si.modlist_paddr = at;
		gmem_write(gm, at, &mod, sizeof(mod));
	}
	gmem_write(gm, BOOT_START_INFO_ADDR, &si, sizeof(si));
	entry->long_mode = false;
	entry->rip = k->pvh_entry;
	entry->rbx = BOOT_START_INFO_ADDR;
	return 0;
}

int boot_setup(struct guest_mem *gm, const struct kernel_image *k, const uint8_t *initrd,
	       uint64_t initrd_size, const char *cmdline, uint64_t rsdp_addr,
	       struct boot_entry *entry, char *err, size_t errlen)
{
	uint64_t initrd_addr = 0;
	int ret;

	ret = boot_check_fit(k, initrd_size, cmdline, gm->size, err, errlen);
	if (ret < 0)
		return ret;
	if (initrd_size) {
		if (initrd_place(k, initrd_size, gmem_low_end(gm), &initrd_addr) < 0 ||
		    gmem_write(gm, initrd_addr, initrd, initrd_size) < 0)
			return fail(err, errlen, -EINVAL, "initrd does not fit");
	}
	if (gmem_write(gm, BOOT_CMDLINE_ADDR, cmdline, strlen(cmdline) + 1) < 0)
		return fail(err, errlen, -EFAULT, "cannot write command line");
	write_gdt(gm);
	write_page_tables(gm);
	memset(entry, 0, sizeof(*entry));
	if (k->kind == KERNEL_BZIMAGE)
		ret = setup_bzimage(gm, k, initrd_addr, initrd_size, rsdp_addr, entry);
	else
		ret = setup_pvh(gm, k, initrd_addr, initrd_size, rsdp_addr, entry);
	if (ret < 0)
		return fail(err, errlen, ret, "cannot place the kernel in guest memory");
	return 0;
}
